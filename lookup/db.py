"""Opening the database: the DSN (given or embedded), the pool, the schema."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from lookup.embedded import ensure_embedded
from lookup.schema import apply_migrations
from router.config import Config

logger = logging.getLogger(__name__)

__all__ = ["connect", "create_pool", "database_url"]


async def database_url(config: Config) -> str:
    if config.database_url:
        return config.database_url
    return await asyncio.to_thread(ensure_embedded, config.data_dir)


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool on a migrated schema."""
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    async with pool.acquire() as con:
        await apply_migrations(con)
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection on a migrated schema (CLI commands)."""
    con = await asyncpg.connect(dsn)
    await apply_migrations(con)
    return con

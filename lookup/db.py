"""Opening the database: the DSN (given or embedded), the pool, the schema."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg

from lookup.embedded import ensure_embedded
from lookup.schema import apply_migrations

logger = logging.getLogger(__name__)

__all__ = ["cancel_wins", "close_pool", "connect", "create_pool", "database_url", "ping"]


async def database_url(dsn: str | None, data_dir: Path) -> str:
    """``dsn`` when given; else the embedded server under ``data_dir``, started if need be."""
    if dsn:
        return dsn
    return await asyncio.to_thread(ensure_embedded, data_dir)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    migrate: bool = True,
    server_settings: dict[str, str] | None = None,
    init: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]] | None = None,
) -> asyncpg.Pool:
    """A pool (on a migrated schema unless ``migrate`` is off).

    Its connections skip asyncpg's reset-on-release, a round trip on every use:
    nothing here changes session state on a pooled connection (LISTEN and
    session advisory locks live on connections of their own), and asyncpg still
    rolls back a transaction left open.
    """
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                     server_settings=server_settings, init=init,
                                     reset=_keep_session)
    if migrate:
        async with pool.acquire() as con:
            await apply_migrations(con)
    return pool


async def _keep_session(_con: asyncpg.Connection) -> None:
    """Pool ``reset`` that sends nothing."""


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection on a migrated schema (CLI commands)."""
    con = await asyncpg.connect(dsn)
    await apply_migrations(con)
    return con


async def ping(pool: asyncpg.Pool, *, within: float) -> None:
    """One round trip through the pool (readiness); raises when there is none in time."""
    async with pool.acquire(timeout=within) as con:
        await con.fetchval("SELECT 1", timeout=within)


async def close_pool(pool: asyncpg.Pool, *, within: float) -> None:
    """Close ``pool`` at shutdown, waiting up to ``within`` seconds for its connections
    to be given back; then terminate what is still busy (a statement on a database that
    went silent would keep a plain close for good)."""
    try:
        async with asyncio.timeout(within):
            await pool.close()
    except TimeoutError:
        logger.warning("database connections still busy at shutdown; terminating them")
        pool.terminate()


def cancel_wins(exc: BaseException) -> None:
    """Raise ``CancelledError`` (from ``exc``) if this task is being cancelled.

    For a loop that outlives errors: asyncpg's rollback on the way out of a cancelled
    transaction may fail (the connection lost meanwhile) and replace the
    ``CancelledError``; caught as an error, the cancel would be lost and the loop go on.
    """
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        raise asyncio.CancelledError from exc

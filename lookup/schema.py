"""Numbered plain-SQL migrations, applied at start under an advisory lock.

Two replicas starting at once on one database take turns on the lock; the
second finds the work done. Each file runs in its own transaction together
with the row that records it.
"""

from __future__ import annotations

import logging
from importlib import resources

from lookup.conn import Conn

logger = logging.getLogger(__name__)

__all__ = ["apply_migrations"]

_LOCK_KEY = 0x6D616E676F  # "mango": one lock for all migrating processes


async def apply_migrations(con: Conn) -> list[str]:
    """Apply every migration not applied yet; return the names applied now."""
    files = sorted(
        (f for f in resources.files("lookup.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    applied_now: list[str] = []
    await con.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await con.fetch("SELECT name FROM schema_migrations")}
        for file in files:
            if file.name in done:
                continue
            async with con.transaction():
                await con.execute(file.read_text(encoding="utf-8"))
                await con.execute("INSERT INTO schema_migrations (name) VALUES ($1)", file.name)
            logger.info("migration applied", extra={"migration": file.name})
            applied_now.append(file.name)
    finally:
        await con.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now

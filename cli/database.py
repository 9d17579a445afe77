"""The one way every command opens the database.

A migrated connection, with the ``default`` account created or updated from
the environment first (PROTOCOLS: so ``import`` works before the first ``serve``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lookup.accounts import Account, fetch_accounts, upsert_default_account
from lookup.conn import Conn
from lookup.db import connect, database_url
from router.config import Config

__all__ = ["find_account", "open_database", "unknown_account"]


@asynccontextmanager
async def open_database(config: Config) -> AsyncIterator[Conn]:
    con = await connect(await database_url(config.database_url, config.data_dir))
    try:
        if config.mango_api_key and config.mango_api_salt:
            await upsert_default_account(
                con, mango_api_key=config.mango_api_key, mango_api_salt=config.mango_api_salt,
                mango_api_url=config.mango_api_url,
                megaplan=(config.megaplan_url, config.megaplan_username,
                          config.megaplan_password),
            )
        yield con
    finally:
        await con.close()


async def find_account(con: Conn, name: str) -> Account | None:
    return next((a for a in await fetch_accounts(con) if a.name == name), None)


def unknown_account(name: str) -> int:
    """Say so on stderr; the exit code of a command given an unknown account."""
    print(f"mango-router: unknown account {name!r}"
          " (set MANGO_API_KEY and MANGO_API_SALT for 'default')", file=sys.stderr)
    return 2

"""``lookup.db``: the readiness probe's round trip, and closing a pool at shutdown."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from lookup.db import close_pool, ping


async def test_ping_answers_through_an_open_pool_and_raises_on_a_closed_one(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    await ping(pool, within=1.0)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await ping(pool, within=1.0)


async def test_closing_a_pool_terminates_a_connection_still_busy_after_its_time(
    dsn: str,
) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)

    async def busy() -> None:
        async with pool.acquire() as con:
            await con.execute("SELECT pg_sleep(30)")

    statement = asyncio.create_task(busy())
    await asyncio.sleep(0.3)  # the statement is under way
    started = time.monotonic()
    await close_pool(pool, within=0.5)
    assert time.monotonic() - started < 5.0  # not the statement's 30 s
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):  # terminated under it
        await statement


async def test_closing_an_idle_pool_closes_it_at_once(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    await close_pool(pool, within=5.0)
    with pytest.raises(asyncpg.InterfaceError):
        await ping(pool, within=1.0)

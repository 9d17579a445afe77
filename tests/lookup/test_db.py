"""``lookup.db.ping``: the readiness probe's round trip."""

from __future__ import annotations

import asyncpg
import pytest

from lookup.db import ping


async def test_ping_answers_through_an_open_pool_and_raises_on_a_closed_one(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    await ping(pool, within=1.0)
    await pool.close()
    with pytest.raises(asyncpg.InterfaceError):
        await ping(pool, within=1.0)

"""Route claims' housekeeping: claims past a day are forgotten, younger ones kept."""

from __future__ import annotations

import asyncpg

from router.claims import forget_old_claims


async def test_claims_older_than_a_day_are_forgotten(dsn: str, db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO route_claims (account_id, entry_id, claimed_at) VALUES"
        " (1, 'old', now() - interval '25 hours'), (1, 'young', now() - interval '23 hours'),"
        " (2, 'new', now())")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        await forget_old_claims(pool)
    finally:
        await pool.close()
    left = await db.fetch("SELECT entry_id FROM route_claims ORDER BY entry_id")
    assert [r["entry_id"] for r in left] == ["new", "young"]

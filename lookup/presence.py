"""Busy legs as the database has them (kept by the journal's trigger, migration 0007).

Replicas read the live ones at start and after a lost listening connection;
every change after that reaches them as a ``mango_busy`` notification.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from lookup.conn import Conn

__all__ = ["BUSY_BOUND_S", "BUSY_CHANNEL", "LiveLeg", "forget_old_legs", "live_legs"]

BUSY_CHANNEL = "mango_busy"
BUSY_BOUND_S = 4 * 3600
"""A leg whose Disconnected never came stops counting this long after it became busy."""


@dataclass(frozen=True, slots=True)
class LiveLeg:
    account_id: int
    call_id: str
    extension: str
    age_s: float  # seconds since it became busy


async def live_legs(con: Conn | asyncpg.Pool) -> list[LiveLeg]:
    """Every account's legs busy now (within the bound)."""
    rows = await con.fetch(
        """SELECT account_id, call_id, extension,
                  extract(epoch FROM now() - since)::float8 AS age
           FROM busy_legs
           WHERE NOT ended AND since > now() - make_interval(secs => $1)""",
        float(BUSY_BOUND_S))
    return [LiveLeg(r["account_id"], r["call_id"], r["extension"], max(0.0, r["age"]))
            for r in rows]


async def forget_old_legs(con: Conn | asyncpg.Pool) -> None:
    """Housekeeping: legs and tombstones older than the bound count for nothing."""
    await con.execute("DELETE FROM busy_legs WHERE since < now() - make_interval(secs => $1)",
                      float(BUSY_BOUND_S))

"""``planner_marks``: how far each run of the call automation has planned.

The planner's queue lives in memory; its mark is what a later run needs to plan
again whatever a stopped one had left (``automation.engine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from lookup.conn import Conn

__all__ = ["forget_marks", "save_mark", "stale_marks"]


async def save_mark(con: Conn | asyncpg.Pool, owner: UUID, planned_before: datetime) -> None:
    await con.execute(
        """INSERT INTO planner_marks (owner, planned_before) VALUES ($1, $2)
           ON CONFLICT (owner) DO UPDATE
           SET planned_before = EXCLUDED.planned_before, updated_at = now()""",
        owner, planned_before)


async def stale_marks(con: Conn | asyncpg.Pool, *, quiet_s: float
                      ) -> list[tuple[UUID, datetime]]:
    """The marks not written for ``quiet_s`` seconds (their runs ended or stalled),
    oldest first."""
    rows = await con.fetch(
        """SELECT owner, planned_before FROM planner_marks
           WHERE updated_at < now() - $1 * interval '1 second'
           ORDER BY planned_before""", quiet_s)
    return [(r["owner"], r["planned_before"]) for r in rows]


async def forget_marks(con: Conn | asyncpg.Pool, owners: Sequence[UUID]) -> None:
    """Their calls are planned again (by the run that took them over)."""
    await con.execute("DELETE FROM planner_marks WHERE owner = ANY($1::uuid[])", list(owners))

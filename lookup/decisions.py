"""The decision record: every routing decision, why, how fast, what the PBX said."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from lookup.conn import Conn

__all__ = ["DecisionRecord", "write_decisions"]


@dataclass(slots=True, kw_only=True)  # not frozen: made on every call, and frozen is slow
class DecisionRecord:
    account_id: int
    entry_id: str
    call_id: str
    number: str
    outcome: str  # routed, or why not (a bounded set: see router.routing)
    reason: str | None = None
    client_id: str | None = None
    employee_id: str | None = None
    extension: str | None = None
    via: str | None = None  # how the employee was found when not as the first responsible
    command_id: str | None = None
    pbx_status: int | None = None
    pbx_result: int | None = None
    latency_us: int


async def write_decisions(pool: Conn | asyncpg.Pool, batch: list[DecisionRecord]) -> None:
    await pool.execute(
        """
        WITH live AS (  -- a foreign key's lock, once a statement (migration 0014)
            SELECT id FROM accounts WHERE id = ANY($1::int4[]) FOR KEY SHARE
        )
        INSERT INTO decisions (account_id, entry_id, call_id, number, outcome, reason, client_id,
                               employee_id, extension, command_id, pbx_status, pbx_result,
                               latency_us, via)
        SELECT * FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::int4[], $12::int4[], $13::int8[], $14::text[])
                      AS t(a, e, c, n, o, r, cl, em, x, cmd, ps, pr, l, v)
        WHERE t.a IN (SELECT id FROM live)  -- removed meanwhile: dropped
        ON CONFLICT (command_id) DO NOTHING
        """,
        [d.account_id for d in batch],
        [d.entry_id for d in batch],
        [d.call_id for d in batch],
        [d.number for d in batch],
        [d.outcome for d in batch],
        [d.reason for d in batch],
        [d.client_id for d in batch],
        [d.employee_id for d in batch],
        [d.extension for d in batch],
        [d.command_id for d in batch],
        [d.pbx_status for d in batch],
        [d.pbx_result for d in batch],
        [d.latency_us for d in batch],
        [d.via for d in batch],
    )

"""The decision record: every routing decision, why, how fast, what the PBX said."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import orjson

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
    """One statement; the batch goes as one JSON document (see ``journal_args``)."""
    await pool.execute(
        """
        WITH live AS (  -- a foreign key's lock, once a statement (migration 0014)
            SELECT id FROM accounts WHERE id = ANY($2::int4[]) FOR KEY SHARE
        )
        INSERT INTO decisions (account_id, entry_id, call_id, number, outcome, reason, client_id,
                               employee_id, extension, command_id, pbx_status, pbx_result,
                               latency_us, via)
        SELECT t.account_id, t.entry_id, t.call_id, t.number, t.outcome, t.reason,
               t.client_id, t.employee_id, t.extension, t.command_id, t.pbx_status,
               t.pbx_result, t.latency_us, t.via
        FROM jsonb_to_recordset($1::jsonb) AS t(
            account_id int4, entry_id text, call_id text, number text, outcome text,
            reason text, client_id text, employee_id text, extension text, via text,
            command_id text, pbx_status int4, pbx_result int4, latency_us int8)
        WHERE t.account_id IN (SELECT id FROM live)  -- removed meanwhile: dropped
        ON CONFLICT (command_id) DO NOTHING
        """,
        orjson.dumps(batch).decode(),
        list({d.account_id for d in batch}),
    )

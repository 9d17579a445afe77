"""The event journal: every valid PBX notification, durable before its 200.

Handlers wait on a ``BatchWriter``; one INSERT per batch. ``journal_key`` (a
hash of the kind and the exact JSON) makes a repeated notification a no-op,
so the PBX re-sending after a timeout does not duplicate anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

__all__ = ["JournalEntry", "write_journal"]

_STATEMENT_WAIT = 10.0  # cancelled past this and retried: the journal drops repeats


@dataclass(slots=True)  # not frozen: a frozen __init__ costs a microsecond per event
class JournalEntry:
    account_id: int
    kind: str
    entry_id: str | None
    call_id: str | None
    seq: int | None
    call_state: str | None
    location: str | None
    payload: str  # the JSON exactly as the PBX sent it


async def write_journal(pool: asyncpg.Pool, batch: list[JournalEntry]) -> None:
    await pool.execute(
        """
        INSERT INTO call_events (account_id, kind, entry_id, call_id, seq, call_state, location,
                                 payload, journal_key)
        SELECT a, k, e, c, s, st, l, p::jsonb, md5(k || ':' || p)  -- the database hashes
        FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[],
                    $7::text[], $8::text[]) AS t(a, k, e, c, s, st, l, p)
        WHERE EXISTS (SELECT 1 FROM accounts WHERE id = t.a)  -- removed meanwhile: dropped
        ON CONFLICT (account_id, journal_key) DO NOTHING
        """,
        [e.account_id for e in batch],
        [e.kind for e in batch],
        [e.entry_id for e in batch],
        [e.call_id for e in batch],
        [e.seq for e in batch],
        [e.call_state for e in batch],
        [e.location for e in batch],
        [e.payload for e in batch],
        timeout=_STATEMENT_WAIT,  # a half-open connection must not hold the journal up
    )

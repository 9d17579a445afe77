"""The serving app folds the journal into the calls list's rows by itself, soon after
the 200s, without a list being read."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str) -> Service:
    await load_records(dsn, ALL)
    return await service_factory()


async def _folded(dsn: str, entry: str, within: float, *, at_least: int = 1) -> int | None:
    """The call's row's event count once it is ``at_least`` (None: not within the time)."""
    con = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            events: int | None = await con.fetchval(
                "SELECT events FROM calls WHERE entry_id = $1", entry)
            if events is not None and events >= at_least:
                return events
            await asyncio.sleep(0.05)
        return None
    finally:
        await con.close()


async def test_journaled_calls_are_folded_in_the_background_soon_after(
    svc: Service, dsn: str
) -> None:
    await svc.event("events/call", call_event("e1", ROUTED, seq=1))
    await svc.event("events/call", call_event("e1", ROUTED, seq=2, state="Connected"))
    assert await _folded(dsn, "e1", within=6.0, at_least=2) is not None
    con = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 6.0  # the PBX emulator's own later events, if any
        while await con.fetchval("SELECT count(*) FROM calls_pending"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await con.fetchval("SELECT events FROM calls WHERE entry_id = 'e1'") == (
            await con.fetchval("SELECT count(*) FROM call_events WHERE entry_id = 'e1'"))
    finally:
        await con.close()


async def test_marks_another_replica_left_are_folded_too(svc: Service, dsn: str) -> None:
    """A replica that journaled and stopped before folding: its marks are anyone's."""
    con = await asyncpg.connect(dsn)
    try:
        account = await con.fetchval("SELECT id FROM accounts WHERE name = 'default'")
        await con.execute(
            "INSERT INTO call_events (account_id, kind, entry_id, call_id, seq, call_state,"
            " location, payload, journal_key) VALUES ($1, 'call', 'left', 'left-ivr', 1,"
            " 'Appeared', 'ivr', $2::jsonb, 'left')", account,
            '{"entry_id": "left", "from": {"number": "79161234567"}, "to": {"number": "1"}}')
    finally:
        await con.close()
    assert await _folded(dsn, "left", within=12.0) == 1  # the folder's idle turn

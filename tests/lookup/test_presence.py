"""Busy legs kept by the journal's trigger (migration 0007): what a journaled leg
makes busy or free, in any order, and the notification each change sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from lookup.journal import JournalEntry, write_journal
from lookup.presence import BUSY_CHANNEL, forget_old_legs, live_legs
from tests.conftest import call_event, load_records
from tests.router.data import ALL


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await load_records(dsn, ALL)
    made = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    yield made
    await made.close()


@pytest.fixture
async def heard(db: asyncpg.Connection) -> list[dict[str, Any]]:
    """The busy notifications, as they come."""
    notes: list[dict[str, Any]] = []
    await db.add_listener(BUSY_CHANNEL, lambda *args: notes.append(orjson.loads(args[3])))
    return notes


async def account(db: asyncpg.Connection) -> int:
    found: int = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    return found


def leg(call_id: str, state: str, *, seq: int, location: str = "abonent",
        to: dict[str, str] | None = None, caller: dict[str, str] | None = None
        ) -> dict[str, Any]:
    return call_event("e1", "79990000001", seq=seq, state=state, location=location,
                      call_id=call_id, to=to or {"extension": "101"},
                      **{"from": caller or {"number": "79990000001"}})


async def journal(pool: asyncpg.Pool, account_id: int, *events: dict[str, Any]) -> None:
    """One journal statement, as the journal's batch writer makes it."""
    await write_journal(pool, [
        JournalEntry(account_id, "call", e["entry_id"], e["call_id"], e["seq"], e["call_state"],
                     e["location"], orjson.dumps(e).decode()) for e in events])


async def busy_now(pool: asyncpg.Pool) -> set[tuple[str, str]]:
    return {(x.call_id, x.extension) for x in await live_legs(pool)}


async def settled(notes: list[dict[str, Any]], count: int) -> list[tuple[str, str, bool]]:
    for _ in range(500):
        if len(notes) >= count:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # and nothing more
    return [(n["c"], n["x"], n["b"]) for n in notes]


async def test_a_connected_employee_leg_is_busy_until_it_disconnects(
    pool: asyncpg.Pool, db: asyncpg.Connection, heard: list[dict[str, Any]]
) -> None:
    account_id = await account(db)
    await journal(pool, account_id, leg("l1", "Appeared", seq=1))
    assert await busy_now(pool) == set()  # offered, not answered
    await journal(pool, account_id, leg("l1", "Connected", seq=2))
    assert await busy_now(pool) == {("l1", "101")}
    await journal(pool, account_id, leg("l1", "OnHold", seq=3))
    assert await busy_now(pool) == {("l1", "101")}
    await journal(pool, account_id, leg("l1", "Disconnected", seq=4))
    assert await busy_now(pool) == set()
    assert await settled(heard, 2) == [("l1", "101", True), ("l1", "101", False)]
    assert {n["a"] for n in heard} == {account_id}


async def test_the_caller_of_an_outgoing_call_is_busy(
    pool: asyncpg.Pool, db: asyncpg.Connection, heard: list[dict[str, Any]]
) -> None:
    account_id = await account(db)
    caller, to = {"extension": "102"}, {"number": "79990000001"}
    await journal(pool, account_id, leg("o1", "Connected", seq=2, caller=caller, to=to))
    assert await busy_now(pool) == {("o1", "102")}
    await journal(pool, account_id, leg("o1", "Disconnected", seq=3, caller=caller, to=to))
    assert await busy_now(pool) == set()
    assert await settled(heard, 2) == [("o1", "102", True), ("o1", "102", False)]


async def test_voice_menu_legs_and_repeats_change_nothing_twice(
    pool: asyncpg.Pool, db: asyncpg.Connection, heard: list[dict[str, Any]]
) -> None:
    account_id = await account(db)
    ivr = call_event("e1", "79990000001", seq=2, state="Connected")  # the greeting plays
    await journal(pool, account_id, ivr, leg("l1", "Connected", seq=2))
    await journal(pool, account_id, leg("l1", "Connected", seq=5))  # another event, same leg
    assert await busy_now(pool) == {("l1", "101")}
    assert await settled(heard, 1) == [("l1", "101", True)]


async def test_a_disconnected_that_comes_first_keeps_its_late_connected_from_counting(
    pool: asyncpg.Pool, db: asyncpg.Connection, heard: list[dict[str, Any]]
) -> None:
    account_id = await account(db)
    await journal(pool, account_id, leg("l1", "Disconnected", seq=4))
    await journal(pool, account_id, leg("l1", "Connected", seq=2))
    assert await busy_now(pool) == set()
    assert await settled(heard, 0) == []


async def test_both_ends_of_a_leg_in_one_statement_leave_it_free(
    pool: asyncpg.Pool, db: asyncpg.Connection, heard: list[dict[str, Any]]
) -> None:
    account_id = await account(db)
    await journal(pool, account_id, leg("l1", "Disconnected", seq=4), leg("l1", "Connected", seq=2))
    assert await busy_now(pool) == set()
    assert await settled(heard, 2) == [("l1", "101", True), ("l1", "101", False)]


async def test_two_replicas_writing_both_ends_at_once_agree_in_any_order(
    pool: asyncpg.Pool, dsn: str, db: asyncpg.Connection
) -> None:
    account_id = await account(db)
    other = await asyncpg.create_pool(dsn, min_size=1, max_size=1)  # another replica's writer
    try:
        for i in range(30):
            connected, ended = leg(f"l{i}", "Connected", seq=2), leg(f"l{i}", "Disconnected",
                                                                      seq=3)
            first, second = (pool, other) if i % 2 else (other, pool)
            await asyncio.gather(journal(first, account_id, connected),
                                 journal(second, account_id, ended))
    finally:
        await other.close()
    assert await busy_now(pool) == set()


async def test_a_failing_busy_update_never_loses_the_journal(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    account_id = await account(db)
    await db.execute("ALTER TABLE busy_legs RENAME TO busy_legs_away")
    try:
        await journal(pool, account_id, leg("l1", "Connected", seq=2))
    finally:
        await db.execute("ALTER TABLE busy_legs_away RENAME TO busy_legs")
    assert await db.fetchval("SELECT count(*) FROM call_events") == 1


async def test_housekeeping_forgets_legs_past_the_bound(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    account_id = await account(db)
    await journal(pool, account_id, leg("old", "Connected", seq=2), leg("new", "Connected", seq=2))
    await db.execute("UPDATE busy_legs SET since = now() - interval '4 hours 1 minute'"
                     " WHERE call_id = 'old'")
    assert await busy_now(pool) == {("new", "101")}  # past the bound: not busy at once
    await forget_old_legs(pool)
    assert await db.fetchval("SELECT array_agg(call_id) FROM busy_legs") == ["new"]

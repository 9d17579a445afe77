"""The journal and the decision record: each batch goes as one JSON document and is
stored field for field; against an account's removal (migration 0014) the account is
checked once a statement, under the lock a foreign key would take, and removing it
deletes its rows, as ON DELETE CASCADE did; the calls list's folds take the same lock
first (migration 0015), so that a removal does not deadlock with a fold."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import asyncpg
import orjson
import pytest

from lookup.accounts import remove_account, update_settings
from lookup.calls import fold_pending
from lookup.conn import Conn
from lookup.decisions import DecisionRecord, write_decisions
from lookup.journal import JournalEntry, write_journal
from tests.conftest import call_event

T = TypeVar("T")
Writer = Callable[[Conn | asyncpg.Pool, int, str], Coroutine[Any, Any, None]]


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    made = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    yield made
    await made.close()


async def _account(db: asyncpg.Connection, name: str) -> int:
    found: int = await db.fetchval(
        "INSERT INTO accounts (name, mango_api_key, mango_api_salt, mango_api_url)"
        " VALUES ($1, $1, 's', 'http://pbx.test/') RETURNING id", name)
    return found


async def _journal(pool: Conn | asyncpg.Pool, account_id: int, entry: str) -> None:
    """An abonent's leg answered: a journal row, and a busy leg by the journal's trigger."""
    event = call_event(entry, "79990000001", seq=2, state="Connected", location="abonent",
                       call_id=f"{entry}-leg", to={"extension": "101"})
    await write_journal(pool, [JournalEntry(account_id, "call", entry, f"{entry}-leg", 2,
                                            "Connected", "abonent", orjson.dumps(event).decode())])


async def _decision(pool: Conn | asyncpg.Pool, account_id: int, entry: str) -> None:
    await write_decisions(pool, [DecisionRecord(
        account_id=account_id, entry_id=entry, call_id=f"{entry}-leg", number="79990000001",
        outcome="routed", command_id=f"{entry}-cmd", latency_us=100)])


async def _rows(db: asyncpg.Connection, account_id: int) -> dict[str, int]:
    return {table: await db.fetchval(f"SELECT count(*) FROM {table} WHERE account_id = $1",
                                     account_id)
            for table in ("call_events", "decisions", "busy_legs")}


async def _a_lock_waited_for(watch: asyncpg.Pool) -> None:
    """Until some session waits for a lock (5 s at most). Watched through a pool: each
    query its own transaction, as pg_stat_activity is read once a transaction."""
    for _ in range(500):
        if await watch.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nobody waited for a lock")


async def _held_then(dsn: str, watch: asyncpg.Pool,
                    first: Callable[[asyncpg.Connection], Coroutine[Any, Any, object]],
                    then: Coroutine[Any, Any, T]) -> T:
    """``first`` in a transaction left open on a connection of its own, then ``then``,
    which must wait for a lock until that transaction commits; what ``then`` returns."""
    con = await asyncpg.connect(dsn)
    try:
        held = con.transaction()
        await held.start()
        await first(con)
        waiting = asyncio.create_task(then)
        await _a_lock_waited_for(watch)
        assert not waiting.done()
        await held.commit()
        return await asyncio.wait_for(waiting, 5)
    finally:
        await con.close()


async def test_a_notification_is_journaled_field_for_field_and_keyed_by_its_exact_text(
    db: asyncpg.Connection, pool: asyncpg.Pool,
) -> None:
    account_id = await _account(db, "a")
    # not orjson's spelling: escapes, spaces and key order the database must not rewrite
    raw = ('{"entry_id": "e\\"1", "call_id": "c/1", "seq": 3, "call_state": "Connected",'
           ' "location": "abonent", "to": {"extension": "101", "name": "Иван \\u00e9 😀"},'
           ' "note": "a\\\\b\\nc\\td"}')
    body = orjson.loads(raw)
    call = JournalEntry(account_id, "call", 'e"1', "c/1", 3, "Connected", "abonent", raw)
    summary = JournalEntry(account_id, "summary", 'e"1', None, None, None, None,
                           '{"entry_id":"e\\"1","talk_time":0}')
    await write_journal(pool, [call, summary])
    await write_journal(pool, [call])  # the PBX sending it again: a no-op

    rows = await db.fetch(
        "SELECT kind, entry_id, call_id, seq, call_state, location, payload, journal_key"
        " FROM call_events WHERE account_id = $1 ORDER BY id", account_id)
    assert [tuple(r.values())[:6] for r in rows] == [
        ("call", 'e"1', "c/1", 3, "Connected", "abonent"),
        ("summary", 'e"1', None, None, None, None)]
    assert orjson.loads(rows[0]["payload"]) == body
    assert body["to"]["name"] == "Иван é 😀"
    assert body["note"] == "a\\b\nc\td"
    assert [r["journal_key"] for r in rows] == [
        hashlib.md5(f"{e.kind}:{e.payload}".encode()).hexdigest() for e in (call, summary)]


async def test_a_decision_is_recorded_field_for_field(
    db: asyncpg.Connection, pool: asyncpg.Pool,
) -> None:
    account_id = await _account(db, "a")
    routed = DecisionRecord(
        account_id=account_id, entry_id="e1", call_id="c1", number="79161234567",
        outcome="routed", reason=None, client_id="cl-1", employee_id="em-1", extension="101",
        via="last_contact", command_id="cmd-1", pbx_status=200, pbx_result=1000,
        latency_us=1234)
    missed = DecisionRecord(account_id=account_id, entry_id="e2", call_id="c2",
                            number="Анонимный \"номер\"", outcome="no_client",
                            reason="нет клиента", latency_us=2**40)
    await write_decisions(pool, [routed, missed])
    await write_decisions(pool, [routed])  # one command_id: recorded once

    fields = ("account_id", "entry_id", "call_id", "number", "outcome", "reason", "client_id",
              "employee_id", "extension", "via", "command_id", "pbx_status", "pbx_result",
              "latency_us")
    rows = await db.fetch(f"SELECT {', '.join(fields)} FROM decisions WHERE account_id = $1"
                          " ORDER BY entry_id", account_id)
    assert [dict(r) for r in rows] == [{f: getattr(d, f) for f in fields}
                                       for d in (routed, missed)]


async def test_removing_an_account_deletes_its_journal_decisions_and_busy_legs_only(
    db: asyncpg.Connection, pool: asyncpg.Pool,
) -> None:
    gone, kept = await _account(db, "gone"), await _account(db, "kept")
    for account_id in (gone, kept):
        await _journal(pool, account_id, f"e{account_id}")
        await _decision(pool, account_id, f"e{account_id}")
    assert await _rows(db, gone) == {"call_events": 1, "decisions": 1, "busy_legs": 1}

    assert await remove_account(db, "gone")

    assert await _rows(db, gone) == {"call_events": 0, "decisions": 0, "busy_legs": 0}
    assert await _rows(db, kept) == {"call_events": 1, "decisions": 1, "busy_legs": 1}


@pytest.mark.parametrize("write", [_journal, _decision], ids=["journal", "decisions"])
async def test_a_write_that_comes_during_a_removal_waits_for_it_and_writes_nothing_of_it(
    db: asyncpg.Connection, pool: asyncpg.Pool, dsn: str, write: Writer,
) -> None:
    gone = await _account(db, "gone")

    async def removal(con: asyncpg.Connection) -> None:
        assert await remove_account(con, "gone")

    await _held_then(dsn, pool, removal, write(pool, gone, "late"))
    assert await _rows(db, gone) == {"call_events": 0, "decisions": 0, "busy_legs": 0}


@pytest.mark.parametrize("write", [_journal, _decision], ids=["journal", "decisions"])
async def test_a_removal_waits_for_a_write_in_progress_and_deletes_what_it_wrote(
    db: asyncpg.Connection, pool: asyncpg.Pool, dsn: str, write: Writer,
) -> None:
    gone = await _account(db, "gone")
    assert await _held_then(dsn, pool, lambda con: write(con, gone, "early"),
                            remove_account(db, "gone"))
    assert await _rows(db, gone) == {"call_events": 0, "decisions": 0, "busy_legs": 0}


async def test_a_settings_save_in_progress_does_not_hold_up_the_journal_or_the_record(
    db: asyncpg.Connection, pool: asyncpg.Pool, dsn: str,
) -> None:
    live = await _account(db, "live")
    saver = await asyncpg.connect(dsn)
    try:
        async with saver.transaction():  # the save's lock held until this commits
            assert await update_settings(saver, live, {"dry_run": True}) is not None
            await asyncio.wait_for(_journal(pool, live, "during"), 2)
            await asyncio.wait_for(_decision(pool, live, "during"), 2)
    finally:
        await saver.close()
    assert await _rows(db, live) == {"call_events": 1, "decisions": 1, "busy_legs": 1}


async def test_one_statement_during_a_removal_keeps_the_other_accounts_rows(
    db: asyncpg.Connection, pool: asyncpg.Pool, dsn: str,
) -> None:
    gone, kept = await _account(db, "gone"), await _account(db, "kept")

    async def removal(con: asyncpg.Connection) -> None:
        assert await remove_account(con, "gone")

    event = orjson.dumps(call_event("mixed", "79990000001")).decode()
    both = [JournalEntry(account_id, "call", f"mixed{account_id}", "mixed-leg", 1, "Appeared",
                         "ivr", event) for account_id in (kept, gone)]
    writer = await asyncpg.connect(dsn)  # one connection: its sixth run may take the
    try:  # server's generic plan of the prepared statement
        for _ in range(6):
            await _held_then(dsn, pool, removal, write_journal(writer, both))
            assert await _rows(db, gone) == {"call_events": 0, "decisions": 0, "busy_legs": 0}
            gone = await _account(db, "gone")
            both[1].account_id = gone
    finally:
        await writer.close()
    assert await db.fetchval("SELECT count(*) FROM call_events WHERE account_id = $1",
                             kept) == 1  # the same event each time: stored once


async def _calls(db: asyncpg.Connection) -> list[tuple[int, str, int]]:
    return [tuple(r.values()) for r in await db.fetch(
        "SELECT account_id, entry_id, events FROM calls ORDER BY account_id, entry_id")]


async def test_a_fold_during_a_removal_folds_the_other_accounts_events_of_its_statement(
    db: asyncpg.Connection, pool: asyncpg.Pool, dsn: str,
) -> None:
    """One journal statement held both accounts' events: the fold that waited for the
    removal folds the kept account's and none of the removed one's. (So it did before
    migration 0015, by another way: the removed account's foreign key refused the
    batch's fold, and the fold done again mark by mark saw the removal.)"""
    gone, kept = await _account(db, "gone"), await _account(db, "kept")
    event = orjson.dumps(call_event("mixed", "79990000001")).decode()
    await write_journal(pool, [JournalEntry(a, "call", f"mixed{a}", "mixed-leg", 1, "Appeared",
                                            "ivr", event) for a in (kept, gone)])

    async def removal(con: asyncpg.Connection) -> None:
        assert await remove_account(con, "gone")

    assert await _held_then(dsn, pool, removal, fold_pending(pool)) == 1
    assert await _calls(db) == [(kept, f"mixed{kept}", 1)]
    assert await db.fetchval("SELECT count(*) FROM calls_pending") == 0


@pytest.mark.parametrize("marked_before_0015", [False, True])
async def test_a_removal_during_a_fold_waits_for_it_and_neither_is_rolled_back(
    db: asyncpg.Connection, pool: asyncpg.Pool, dsn: str, marked_before_0015: bool,
) -> None:
    """A fold that updated a removed account's row and then adds one: the removal waits
    for the fold's lock on the account (before migration 0015 the fold took it only to
    check the new row's key, after the removal had locked the account and was waiting
    for the updated row: a deadlock, one of the two rolled back). Two folds in one
    transaction stand in for one fold's statement, where the same happened at random;
    marks made before 0015 have their accounts read from the journal."""
    gone = await _account(db, "gone")
    await _journal(pool, gone, "old")
    assert await fold_pending(pool) == 1  # the account has a calls row
    await _journal(pool, gone, "old")  # the same event again: a no-op, no mark
    for entry, seq in (("old", 3), ("new", 1)):  # one mark each: the row's update, a new row
        event = call_event(entry, "79990000001", seq=seq, call_id=f"{entry}-{seq}")
        await write_journal(pool, [JournalEntry(gone, "call", entry, f"{entry}-{seq}", seq,
                                                "Appeared", "ivr", orjson.dumps(event).decode())])
    if marked_before_0015:
        await db.execute("UPDATE calls_pending SET accounts = NULL")
    folder = await asyncpg.connect(dsn)
    try:
        async with folder.transaction():
            assert await fold_pending(folder, batches=1) == 1  # the update: "old" locked
            removing = asyncio.create_task(remove_account(db, "gone"))
            await _a_lock_waited_for(pool)
            assert await asyncio.wait_for(fold_pending(folder, batches=1), 5) == 1  # "new"
            assert not removing.done()
    finally:
        await folder.close()
    assert await asyncio.wait_for(removing, 5)
    assert await _calls(db) == []
    assert await db.fetchval("SELECT count(*) FROM calls_pending") == 0

"""The admin pages' calls: the ``calls`` rows folded from the journal, the calls page
(cursor, search, what a row says), one call's timeline and the overview."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from automation.call_model import OPEN_SILENCE
from lookup.calls import (
    FOLD_BATCHES,
    SILENCE_S,
    BadCursor,
    CallRow,
    calls_page,
    calls_with_open_legs,
    find_call,
    fold_pending,
    recent_calls,
)
from lookup.decisions import DecisionRecord, write_decisions
from lookup.journal import JournalEntry, write_journal
from lookup.outbox import NewAction, complete, fail, plan
from lookup.overview import overview
from tests.automation.calls import (
    EntryWriter,
    answered,
    missed_in_ivr,
    offered_and_missed,
    outgoing,
    to_group,
)
from tests.conftest import call_event, load_records
from tests.router.data import ALL, ROUTED

CALLER = "79161234567"
LINE = "74951112233"


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    await load_records(dsn, ALL)  # the default account, its employees and clients
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def account(pool: asyncpg.Pool) -> int:
    account_id: int = await pool.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    return account_id


def _entry(account: int, kind: str, payload: dict[str, Any]) -> JournalEntry:
    """As the webhooks journal it: a leg's fields in columns, other kinds by entry only."""
    raw = orjson.dumps(payload).decode()
    if kind == "call":
        return JournalEntry(account, kind, payload["entry_id"], payload["call_id"],
                            payload["seq"], payload["call_state"], payload["location"], raw)
    return JournalEntry(account, kind, payload.get("entry_id"), None, None, None, None, raw)


async def _journal(pool: asyncpg.Pool, entries: list[JournalEntry], *, apart: bool = True
                   ) -> None:
    if apart:  # one statement each, as events that come one by one
        for e in entries:
            await write_journal(pool, [e])
    else:
        await write_journal(pool, entries)


async def _call(pool: asyncpg.Pool, account: int, entry: str, number: str = CALLER, *,
                states: tuple[str, ...] = ("Appeared",)) -> None:
    """An incoming call's voice-menu leg, in these states."""
    for seq, state in enumerate(states, 1):
        body = call_event(entry, number, seq=seq, state=state)
        await write_journal(pool, [_entry(account, "call", body)])


def _summary(entry: str, result: int, number: str = CALLER) -> dict[str, Any]:
    return {"entry_id": entry, "call_direction": 1, "from": {"number": number},
            "to": {"number": LINE}, "line_number": LINE, "entry_result": result}


def _decision(account: int, entry: str, outcome: str = "routed", *, command: str | None = None,
              employee: str | None = "1", extension: str | None = "101",
              client: str | None = "10", number: str = ROUTED) -> DecisionRecord:
    return DecisionRecord(account_id=account, entry_id=entry, call_id=f"{entry}-ivr",
                          number=number, outcome=outcome,
                          reason=None if outcome == "routed" else outcome, client_id=client,
                          employee_id=employee, extension=extension, command_id=command,
                          pbx_status=200 if command else None,
                          pbx_result=1000 if command else None, latency_us=850)


async def _row(pool: asyncpg.Pool, account: int, entry: str) -> CallRow:
    page = await calls_page(pool, account, limit=500)
    return next(c for c in page.calls if c.entry_id == entry)


# --- what a row says, from the PBX's events in any order ------------------------------
Scenario = Callable[[EntryWriter], dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {
    "answered": lambda w: answered(w, CALLER, LINE, ["101"]),
    "routed": lambda w: answered(w, CALLER, LINE, ["101"], routed=True),
    "transferred": lambda w: answered(w, CALLER, LINE, ["101", "102", "103"], transfers=2,
                                      from_extension=True),
    "group_answered": lambda w: to_group(w, CALLER, LINE, ["101", "102"], "7", answered_by=1),
    "group_missed": lambda w: to_group(w, CALLER, LINE, ["101", "102"], "7"),
    "missed_in_ivr": lambda w: missed_in_ivr(w, CALLER, LINE, digits="12"),
    "offered_missed": lambda w: offered_and_missed(w, CALLER, LINE, ["101", "102"]),
    "outgoing": lambda w: outgoing(w, "101", CALLER, LINE, picked_up=True),
    "outgoing_no_answer": lambda w: outgoing(w, "101", CALLER, LINE, picked_up=False),
    "no_summary_answered": lambda w: answered(w, CALLER, LINE, ["101"], summary=False),
    "no_summary_missed": lambda w: missed_in_ivr(w, CALLER, LINE, summary=False),
    "no_summary_outgoing": lambda w: outgoing(w, "101", CALLER, LINE, picked_up=True,
                                              summary=False),
}


@pytest.mark.parametrize("order", ["as_sent", "reversed", "shuffled_in_one_statement"])
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_a_calls_row_says_what_the_call_model_says_whatever_the_order_of_its_events(
    pool: asyncpg.Pool, account: int, name: str, order: str
) -> None:
    w = EntryWriter("e1")
    expected = SCENARIOS[name](w)
    entries = [_entry(account, e.kind, dict(e.payload)) for e in w.events]
    if order == "reversed":
        entries.reverse()
    elif order.startswith("shuffled"):
        random.Random(name).shuffle(entries)
    await _journal(pool, entries, apart=order != "shuffled_in_one_statement")
    row = await _row(pool, account, "e1")
    assert (row.direction, row.number, row.line, row.answered) == (
        expected["direction"], expected["number"], expected["line"], expected["answered"])
    assert row.extension == expected["caller_extension"]
    assert row.outcome == ("answered" if expected["answered"] else "missed")  # every one ended


async def test_a_call_is_in_progress_until_its_summary_or_every_leg_hung_up_or_silence(
    pool: asyncpg.Pool, account: int
) -> None:
    await _call(pool, account, "ringing")
    await _call(pool, account, "hung_up", states=("Appeared", "Disconnected"))
    await _call(pool, account, "summarised")
    await write_journal(pool, [_entry(account, "summary", _summary("summarised", 0))])
    await _call(pool, account, "silent")
    await _call(pool, account, "talking")
    await fold_pending(pool)
    await pool.execute("UPDATE calls SET last_at = last_at - make_interval(secs => $1)"
                       " WHERE entry_id = 'silent'", SILENCE_S + 1)
    # a conversation (or a wait in a queue) sends nothing while it lasts: 11 quiet
    # minutes with a leg open are not the end of it
    await pool.execute("UPDATE calls SET last_at = last_at - interval '11 minutes'"
                       " WHERE entry_id = 'talking'")
    outcomes = {c.entry_id: c.outcome for c in (await calls_page(pool, account)).calls}
    assert outcomes == {"ringing": "in_progress", "hung_up": "missed", "summarised": "missed",
                        "silent": "missed", "talking": "in_progress"}
    assert SILENCE_S == OPEN_SILENCE  # the automation's rule, which lookup may not import


async def test_the_calls_still_open_after_a_quiet_spell_are_found_for_a_starting_planner(
    pool: asyncpg.Pool, account: int
) -> None:
    for entry in ("talking", "just_now", "long_ago"):
        await _call(pool, account, entry)  # a leg open
    await _call(pool, account, "hung_up", states=("Appeared", "Disconnected"))
    await _call(pool, account, "summarised")
    await write_journal(pool, [_entry(account, "summary", _summary("summarised", 0))])
    await fold_pending(pool)
    await pool.execute("UPDATE calls SET last_at = last_at - interval '1 hour',"
                       " started_at = started_at - interval '1 hour'"
                       " WHERE entry_id IN ('talking', 'hung_up', 'summarised')")
    await pool.execute("UPDATE calls SET last_at = last_at - interval '13 hours',"
                       " started_at = started_at - interval '13 hours'"
                       " WHERE entry_id = 'long_ago'")
    found = await calls_with_open_legs(pool, within_s=12 * 3600, quiet_s=660)
    assert [(a, e) for a, e, _ in found] == [(account, "talking")]
    [(_, _, last)] = found
    assert abs(last - (time.time() - 3600)) < 60


async def test_the_summarys_result_wins_over_the_legs(pool: asyncpg.Pool, account: int) -> None:
    w = EntryWriter("e1")
    answered(w, CALLER, LINE, ["101"], summary=False)  # an employee's leg was Connected
    await _journal(pool, [_entry(account, e.kind, dict(e.payload)) for e in w.events])
    assert (await _row(pool, account, "e1")).answered
    await write_journal(pool, [_entry(account, "summary", _summary("e1", 0))])
    assert not (await _row(pool, account, "e1")).answered


async def test_a_journal_statement_marks_its_events_and_one_fold_takes_them_once(
    pool: asyncpg.Pool, account: int
) -> None:
    await write_journal(pool, [_entry(account, "call", call_event(e, CALLER))
                               for e in ("e1", "e2")])
    await write_journal(pool, [_entry(account, "result", {"command_id": "c1", "result": 1000})])
    assert await pool.fetchval("SELECT count(*) FROM calls") == 0  # not in the statement
    assert await pool.fetchval("SELECT count(*) FROM calls_pending") == 1  # no mark: result
    assert await fold_pending(pool) == 1
    assert await fold_pending(pool) == 0
    assert {r["entry_id"]: r["events"] for r in await pool.fetch(
        "SELECT entry_id, events FROM calls")} == {"e1": 1, "e2": 1}
    assert await pool.fetchval("SELECT count(*) FROM calls_pending") == 0


async def test_rows_folded_statement_by_statement_equal_those_folded_at_once(
    pool: asyncpg.Pool, account: int
) -> None:
    """However the events were split into statements and folds, a call's row is the
    same (and its times are the journal's)."""
    for i, scenario in enumerate(SCENARIOS.values()):
        w = EntryWriter(f"e{i}")
        scenario(w)
        entries = [_entry(account, e.kind, dict(e.payload)) for e in w.events]
        await _journal(pool, entries[: len(entries) // 2], apart=False)
        await fold_pending(pool)
        await _journal(pool, entries[len(entries) // 2:])
        if i % 2:
            await fold_pending(pool)
    await fold_pending(pool)
    compared = "SELECT * FROM calls ORDER BY entry_id"
    kept = [dict(r) for r in await pool.fetch(compared)]
    assert len(kept) == len(SCENARIOS)
    journal_times = {r["entry_id"]: (r["first"], r["last"]) for r in await pool.fetch(
        "SELECT entry_id, min(received_at) AS first, max(received_at) AS last FROM call_events"
        " GROUP BY entry_id")}
    assert all((k["started_at"], k["last_at"]) == journal_times[k["entry_id"]] for k in kept)
    await pool.execute("TRUNCATE calls")
    await pool.execute("SELECT fold_calls(ARRAY(SELECT id FROM call_events))")
    assert [dict(r) for r in await pool.fetch(compared)] == kept


async def test_a_fold_the_rows_refuse_never_loses_the_journal_nor_holds_up_later_folds(
    pool: asyncpg.Pool, account: int
) -> None:
    await pool.execute("ALTER TABLE calls ADD CONSTRAINT refuse CHECK (entry_id <> 'bad')")
    await _call(pool, account, "bad")
    await _call(pool, account, "good")
    assert await pool.fetchval("SELECT count(*) FROM call_events") == 2  # journaled anyway
    assert await fold_pending(pool) == 2
    assert [r["entry_id"] for r in await pool.fetch("SELECT entry_id FROM calls")] == ["good"]
    assert await pool.fetchval("SELECT count(*) FROM calls_pending") == 0  # dropped, logged


async def test_a_mark_the_rows_refuse_for_any_lasting_reason_is_dropped_and_lists_still_work(
    pool: asyncpg.Pool, account: int
) -> None:
    """An outside number too long for the number index (54000, neither a data nor a
    constraint error) must not be taken again by every fold, nor hold up the others."""
    digits = random.Random(1).choices("0123456789", k=9000)  # random: it does not compress
    await _call(pool, account, "huge", "".join(digits))
    await _call(pool, account, "after")
    assert [c.entry_id for c in (await calls_page(pool, account)).calls] == ["after"]
    assert await pool.fetchval("SELECT count(*) FROM calls_pending") == 0
    assert await pool.fetchval("SELECT count(*) FROM call_events") == 2  # both journaled


async def test_a_fold_up_to_a_mark_leaves_the_later_ones(pool: asyncpg.Pool, account: int
                                                         ) -> None:
    """What bounds a list's folds while the journal goes on marking."""
    for entry in ("e1", "e2", "e3"):
        await _call(pool, account, entry)
    marks = [r["id"] for r in await pool.fetch("SELECT id FROM calls_pending ORDER BY id")]
    assert await fold_pending(pool, wait=True, up_to=marks[1]) == 2
    assert [r["id"] for r in await pool.fetch("SELECT id FROM calls_pending")] == marks[2:]
    assert sorted(r["entry_id"] for r in await pool.fetch("SELECT entry_id FROM calls")) == [
        "e1", "e2"]


async def test_a_fold_that_fails_for_a_passing_reason_is_rolled_back_and_done_again(
    pool: asyncpg.Pool, account: int, dsn: str
) -> None:
    await _call(pool, account, "e1")
    holder = await asyncpg.connect(dsn)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE calls IN EXCLUSIVE MODE")
            async with pool.acquire() as con, con.transaction():
                await con.execute("SET LOCAL lock_timeout = '50ms'")
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await fold_pending(con)
    finally:
        await holder.close()
    assert await pool.fetchval("SELECT count(*) FROM calls_pending") == 1  # still marked
    assert await fold_pending(pool) == 1
    assert await pool.fetchval("SELECT events FROM calls WHERE entry_id = 'e1'") == 1


async def test_a_list_waits_for_a_fold_another_session_is_doing_and_shows_its_calls(
    pool: asyncpg.Pool, account: int, dsn: str
) -> None:
    await _call(pool, account, "e1")
    other = await asyncpg.connect(dsn)
    try:
        folding = other.transaction()
        await folding.start()
        assert await fold_pending(other) == 1  # folded, not committed yet
        page = asyncio.ensure_future(calls_page(pool, account))
        await asyncio.sleep(0.2)
        assert not page.done()  # a list without the wait would show no call now
        await folding.commit()
        assert [c.entry_id for c in (await page).calls] == ["e1"]
    finally:
        await other.close()


async def test_a_list_folds_a_backlog_deeper_than_one_fold(
    pool: asyncpg.Pool, account: int
) -> None:
    for i in range(FOLD_BATCHES + 5):
        await _call(pool, account, f"e{i}")
    rows = (await recent_calls(pool, account, number=None, limit=FOLD_BATCHES + 10))
    assert len(rows) == FOLD_BATCHES + 5


async def test_folds_racing_over_the_same_calls_fold_every_event_once(
    pool: asyncpg.Pool, account: int, dsn: str
) -> None:
    """Two replicas journal events of the same calls at once, in opposite orders, while
    two folders fold: each event is folded in once (a deadlock would roll a fold back,
    a double fold would count an event twice)."""
    entries = [f"e{i}" for i in range(8)]
    writing = True

    async def replica(name: str, order: list[str], rounds: int) -> None:
        for r in range(rounds):
            await write_journal(pool, [
                _entry(account, "call", call_event(e, CALLER, seq=r + 1,
                                                   call_id=f"{e}-{name}"))
                for e in order])

    async def folder() -> int:
        con = await asyncpg.connect(dsn)
        folded = 0
        try:
            while writing or await pool.fetchval("SELECT count(*) FROM calls_pending"):
                folded += await fold_pending(con, batches=3)
                await asyncio.sleep(0)
        finally:
            await con.close()
        return folded

    folders = [asyncio.ensure_future(folder()) for _ in range(2)]
    await asyncio.gather(replica("a", entries, 30), replica("b", entries[::-1], 30))
    writing = False
    assert sum(await asyncio.gather(*folders)) == 60  # statements
    counts = {r["entry_id"]: (r["events"], r["legs"]) for r in await pool.fetch(
        "SELECT entry_id, events, legs FROM calls")}
    assert counts == {e: (60, [f"{e}-a", f"{e}-b"]) for e in entries}


# --- the calls page ----------------------------------------------------------------
async def test_pages_follow_the_cursor_newest_first_without_gaps_or_repeats(
    pool: asyncpg.Pool, account: int
) -> None:
    # three calls share one start (one statement): the entry breaks the tie
    await write_journal(pool, [_entry(account, "call", call_event(e, CALLER))
                               for e in ("t1", "t3", "t2")])
    for entry in ("a", "b", "c", "d"):
        await _call(pool, account, entry)
    seen: list[str] = []
    page = await calls_page(pool, account, limit=3)
    sizes = []
    while True:
        sizes.append(len(page.calls))
        seen += [c.entry_id for c in page.calls]
        if page.older is None:
            break
        await _call(pool, account, f"new{len(sizes)}")  # newer calls do not shift the pages
        page = await calls_page(pool, account, limit=3, before=page.older)
    assert seen == ["d", "c", "b", "a", "t3", "t2", "t1"]
    assert sizes == [3, 3, 1]
    total = await pool.fetchval("SELECT count(*) FROM calls")
    assert (await calls_page(pool, account, limit=total)).older is None  # the last page
    assert (await calls_page(pool, account, limit=total - 1)).older is not None


async def test_a_cursor_that_no_page_gave_is_refused(pool: asyncpg.Pool, account: int) -> None:
    for bad in ("", "x", "!!!", "MTIzNDU", "YWJjOmRlZg", "MTIzOmEAYg"):  # ..., "abc:def", NUL
        with pytest.raises(BadCursor):
            await calls_page(pool, account, before=bad)


async def test_search_finds_the_calls_of_a_number_by_either_end_and_only_whole_numbers(
    pool: asyncpg.Pool, account: int
) -> None:
    await _call(pool, account, "mine")
    await _call(pool, account, "other", "79990000001")
    w = EntryWriter("out")
    outgoing(w, "101", CALLER, LINE, picked_up=True)  # called out to the same number
    await _journal(pool, [_entry(account, e.kind, dict(e.payload)) for e in w.events])
    acme = await pool.fetchval(
        "INSERT INTO accounts (name, mango_api_key, mango_api_salt, mango_api_url)"
        " VALUES ('acme', 'k2', 's', 'http://x/') RETURNING id")
    await _call(pool, acme, "theirs")

    async def found(number: str, limit: int = 50) -> list[str]:
        return [c.entry_id for c in (await calls_page(pool, account, number=number,
                                                      limit=limit)).calls]

    assert await found(CALLER) == ["out", "mine"]
    assert await found(LINE) == ["out", "other", "mine"]  # the line, in or out
    assert await found(CALLER[-7:]) == []  # no partial numbers
    first = await calls_page(pool, account, number=CALLER, limit=1)
    assert first.older is not None
    older = await calls_page(pool, account, number=CALLER, limit=1, before=first.older)
    assert ([c.entry_id for c in older.calls], older.older) == (["mine"], None)
    assert [c["entry_id"] for c in await recent_calls(pool, account, number=CALLER,
                                                      limit=50)] == ["out", "mine"]


async def test_a_row_names_the_client_the_routing_and_what_the_automation_did(
    pool: asyncpg.Pool, account: int
) -> None:
    await _call(pool, account, "routed", ROUTED)
    await _call(pool, account, "unknown", "79990000000")
    await _call(pool, account, "copy_only", "79160000006")  # clients 9 and 20: 9 comes first
    await write_decisions(pool, [
        _decision(account, "routed", "claimed_elsewhere"),  # another replica's, first
        _decision(account, "routed", command="cmd-1"),
        _decision(account, "unknown", "no_client", employee=None, extension=None, client=None,
                  number="79990000000")])
    async with pool.acquire() as con:
        ids = [(await plan(con, account, NewAction(entry_id="routed", action=a, payload={})))[0]
               for a in ("create_deal", "record_call", "set_responsible")]
        await complete(con, ids[0], crm_id="deal-5")
        await fail(con, ids[1], error="refused")
    rows = {c.entry_id: c for c in (await calls_page(pool, account)).calls}
    routed = rows["routed"]
    assert routed.decision is not None
    assert (routed.decision.outcome, routed.decision.routed, routed.decision.employee_id,
            routed.decision.employee_name, routed.decision.extension,
            routed.decision.latency_us, routed.decision.pbx_result) == (
        "routed", True, "1", "Anna", "101", 850, 1000)
    assert (routed.client_id, routed.client_name) == ("10", "Client 10")
    assert (routed.actions.pending, routed.actions.done, routed.actions.failed,
            routed.actions.total) == (1, 1, 1, 3)
    assert (routed.direction, routed.caller, routed.called) == ("in", ROUTED, LINE)
    unknown = rows["unknown"]
    assert unknown.decision is not None
    assert (unknown.decision.routed, unknown.decision.reason, unknown.client_id,
            unknown.actions.total) == (False, "no_client", None, 0)
    copy_only = rows["copy_only"]
    assert (copy_only.decision, copy_only.client_id, copy_only.client_name) == (
        None, "9", "Client 9")


# --- one call -------------------------------------------------------------------------
async def test_a_calls_timeline_names_the_employee_and_client_and_links_crm_objects(
    pool: asyncpg.Pool, account: int
) -> None:
    await _call(pool, account, "e1", ROUTED)
    await write_decisions(pool, [_decision(account, "e1", "claimed_elsewhere"),
                                 _decision(account, "e1", command="cmd-1")])
    async with pool.acquire() as con:
        action, _ = await plan(con, account, NewAction(entry_id="e1", action="create_deal",
                                                       payload={}))
        await complete(con, action, crm_id="deal-5")
    found = await find_call(pool, account, "e1")
    assert found is not None
    decision = found["decision"]
    assert (decision["outcome"], decision["employee_name"], decision["client_name"]) == (
        "routed", "Anna", "Client 10")
    assert [(a["action"], a["state"], a["crm_id"]) for a in found["crm_actions"]] == [
        ("create_deal", "done", "deal-5")]


# --- the overview -------------------------------------------------------------------
async def test_the_overview_counts_the_days_calls_per_local_hour_by_routing_and_outcome(
    pool: asyncpg.Pool, account: int
) -> None:
    for entry in ("r1", "r2", "nc", "busy", "missed", "ringing", "out", "yesterday"):
        await _call(pool, account, entry)
    await write_journal(pool, [_entry(account, "summary", _summary(e, r))
                               for e, r in (("r1", 1), ("r2", 1), ("nc", 1), ("busy", 0),
                                            ("missed", 0), ("yesterday", 1))])
    await fold_pending(pool)
    await pool.execute("UPDATE calls SET leg_direction = 'out', summary_direction = 'out'"
                       " WHERE entry_id = 'out'")
    await write_decisions(pool, [
        _decision(account, "r1", command="c1"), _decision(account, "r2", command="c2"),
        _decision(account, "nc", "no_client"), _decision(account, "busy", "busy"),
        _decision(account, "missed", "no_client"), _decision(account, "yesterday",
                                                             command="c3")])
    # Moscow is UTC+3: 21:30 UTC is 00:30 of the next local day, 20:30 UTC 23:30
    day = date(2026, 3, 10)
    local_0030 = datetime(2026, 3, 9, 21, 30, tzinfo=UTC)
    await pool.execute("UPDATE calls SET started_at = $1, last_at = $1"
                       " WHERE entry_id <> 'yesterday' AND entry_id <> 'ringing'", local_0030)
    await pool.execute("UPDATE calls SET started_at = $1, last_at = $1"
                       " WHERE entry_id = 'yesterday'", local_0030 - timedelta(hours=1))
    await pool.execute("UPDATE calls SET started_at = $1 WHERE entry_id = 'ringing'",
                       local_0030 + timedelta(hours=14))  # 14:30 local
    async with pool.acquire() as con:
        await plan(con, account, NewAction(entry_id="r1", action="create_deal", payload={}))
    await pool.execute(
        "INSERT INTO sync_state (account_id, last_success_at, full_finished_at, last_error,"
        " last_error_at) VALUES ($1, now() - interval '2 hours', now() - interval '2 hours',"
        " 'Megaplan said 500', now() - interval '1 hour')", account)

    view = await overview(pool, account, timezone="Europe/Moscow", day=day)
    assert (view.day, len(view.hours), [h.hour for h in view.hours][:3]) == (day, 24, [0, 1, 2])
    night = view.hours[0]
    assert (night.calls, night.routed, night.not_routed, night.undecided) == (
        6, 2, {"no_client": 2, "busy": 1}, 1)
    assert (night.answered, night.missed, night.in_progress) == (3, 2, 0)  # "out" unanswered
    afternoon = view.hours[14]
    assert (afternoon.calls, afternoon.in_progress, afternoon.undecided) == (1, 1, 1)
    assert sum(h.calls for h in view.hours) == 7  # not yesterday's
    total = view.total()
    assert (total.calls, total.routed, total.not_routed, total.missed) == (
        7, 2, {"no_client": 2, "busy": 1}, 2)
    assert view.outbox_pending == 1
    assert view.outbox_oldest_s is not None
    assert view.sync is not None
    assert (view.sync.last_error, view.sync.failing) == ("Megaplan said 500", True)
    previous = await overview(pool, account, timezone="Europe/Moscow", day=day - timedelta(1))
    assert [(h.hour, h.calls, h.routed) for h in previous.hours if h.calls] == [(23, 1, 1)]


async def test_the_overview_of_today_follows_the_accounts_clock_and_an_unsynced_account(
    pool: asyncpg.Pool, account: int
) -> None:
    await _call(pool, account, "now")
    now = datetime.now(UTC)
    for zone in ("Europe/Moscow", "Asia/Vladivostok", "America/New_York"):
        view = await overview(pool, account, timezone=zone, now=now)
        local = now.astimezone(ZoneInfo(zone))
        assert view.day == local.date()
        assert view.hours[local.hour].calls == 1
    assert (view.sync, view.outbox_pending, view.outbox_oldest_s) == (None, 0, None)

"""The planner's marks: a run that stopped while it lagged behind leaves no call unplanned;
and routing first: the planner waits while calls come fast, within a bound.

A run keeps what it has still to plan in memory and writes, every few seconds,
a time before which every call it was told of is planned. The next run plans
again the journal's calls since the oldest mark of the runs that stopped (not
only the last 11 minutes), then drops those marks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import asyncpg
import orjson
import pytest

from automation import engine
from automation.call_model import OPEN_SILENCE, SILENCE
from automation.engine import (
    BUSY_EVENTS_PER_S,
    DEFER_MOST_S,
    GRACE_S,
    QUIET_S,
    CallAutomation,
    Traffic,
)
from lookup.accounts import Account
from lookup.settings import Settings
from router.keys import AUTOMATION
from tests.automation import calls
from tests.automation.calls import EntryWriter
from tests.automation.conftest import Crm, CrmFactory, eventually

LINE = "74951112233"


class _NoAccounts:
    def by_id(self, account_id: int, /) -> Account | None:
        return None


def _engine(now: float) -> CallAutomation:
    return CallAutomation(cast(asyncpg.Pool, None), _NoAccounts(), clock=lambda: now)


def test_the_mark_is_the_oldest_arrival_still_to_plan_less_a_margin() -> None:
    automation = _engine(now=5000.0)
    assert automation.mark() == 5000.0 - 60  # nothing heard of yet: the start
    automation.seen(1, "long-call", plan_now=False, at=6000.0)
    automation.seen(1, "short-call", plan_now=True, at=6100.0)
    automation.seen(1, "long-call", plan_now=False, at=6200.0)  # its latest event
    assert automation.mark() == 6100.0 - 60  # the short call is still to plan
    automation._ended(1, ["short-call"])
    automation._queue.pop((1, "short-call"))
    assert automation.mark() == 6200.0 - 60  # the long one goes on
    automation._ended(1, ["long-call"])
    automation.seen(1, "third-call", plan_now=False, at=6400.0)
    automation._ended(1, ["third-call"])
    assert automation.mark() == 6400.0 - 60  # all planned: the newest event's arrival
    # a recording of the ended short call, journaled late: queued, it holds the mark
    automation.seen(1, "short-call", plan_now=True, at=6300.0)
    assert automation.mark() == 6300.0 - 60
    automation._queue.clear()
    assert automation.mark() == 6400.0 - 60


def test_events_the_serving_process_dropped_hold_the_mark() -> None:
    automation = _engine(now=5000.0)
    automation.seen(1, "call", plan_now=False, at=6000.0)
    automation._ended(1, ["call"])
    automation.missed(5500.0)
    assert automation.mark() == 5500.0 - 60


async def _journal(crm: Crm, w: EntryWriter, ago: timedelta) -> None:
    """The call's events, journaled ``ago`` (no replica was told of them)."""
    account_id = await crm.db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    for e in w.events:
        await crm.db.execute(
            """INSERT INTO call_events (account_id, kind, entry_id, payload, journal_key,
                                        received_at)
               VALUES ($1, $2, $3, $4::jsonb, md5($4::text), now() - $5::interval)""",
            account_id, e.kind, w.entry_id, orjson.dumps(e.payload).decode(), ago)


async def _journal_ended_call(crm: Crm, entry_id: str, number: str, ago: timedelta) -> None:
    """An answered call from a new number."""
    w = EntryWriter(entry_id)
    calls.answered(w, number, LINE, [crm.ext(0)])
    await _journal(crm, w, ago)


async def _dropped(crm: Crm, owner: uuid.UUID) -> None:
    """Until the mark is gone: its calls were taken over."""

    async def gone() -> bool:
        return not await crm.db.fetchval(
            "SELECT count(*) FROM planner_marks WHERE owner = $1", owner)

    await eventually(gone, within=10)


async def _stopped_run(crm: Crm, planned_before: timedelta) -> uuid.UUID:
    """The mark of a run that stopped a minute ago, ``planned_before`` behind."""
    owner = uuid.uuid4()
    await crm.db.execute(
        """INSERT INTO planner_marks (owner, planned_before, updated_at)
           VALUES ($1, now() - $2::interval, now() - interval '1 minute')""",
        owner, planned_before)
    return owner


async def test_a_start_plans_again_what_a_stopped_planner_lagging_by_25_minutes_left(
    crm: Crm, crm_factory: CrmFactory,
) -> None:
    await crm.settings(accepted_incoming="client")
    await _journal_ended_call(crm, "lagged-20m", "79990001201", timedelta(minutes=20))
    stopped = await _stopped_run(crm, timedelta(minutes=25))
    await crm_factory()  # another run starts
    actions = await crm.settled("lagged-20m", 2)
    assert [a["action"] for a in actions] == ["create_client", "record_call"]
    await _dropped(crm, stopped)


async def test_without_a_stopped_planners_mark_a_start_plans_only_the_last_minutes(
    crm: Crm, crm_factory: CrmFactory,
) -> None:
    await crm.settings(accepted_incoming="client")
    await _journal_ended_call(crm, "old-20m", "79990001202", timedelta(minutes=20))
    await _journal_ended_call(crm, "recent-5m", "79990001203", timedelta(minutes=5))
    await _stopped_run(crm, timedelta(minutes=1))  # it had planned all but its last minute
    await crm_factory()
    await crm.settled("recent-5m", 2)
    assert await crm.actions("old-20m") == []  # planned when it ended, as far as anyone knows


async def test_a_running_planner_writes_its_mark(crm: Crm) -> None:
    await crm.settings(accepted_incoming="client")
    started = datetime.now(UTC)

    async def written() -> bool:
        return bool(await crm.db.fetchval(
            "SELECT count(*) FROM planner_marks WHERE updated_at >= $1", started))

    await eventually(written, within=15)  # every sweep (5 s)
    mark = await crm.db.fetchval("SELECT max(planned_before) FROM planner_marks")
    assert started - timedelta(minutes=5) < mark < started


# --- routing first: planning waits while calls come fast ------------------------------------
def _events(traffic: Traffic, rate: float, *, start: float, seconds: float) -> float:
    """``rate`` events a second for ``seconds``; the time after the last."""
    n = int(rate * seconds)
    for i in range(n):
        traffic.count(start + i / rate)
    return start + n / rate


def test_traffic_is_busy_while_events_come_fast_and_for_a_while_after() -> None:
    traffic = Traffic(now=0.0)
    end = _events(traffic, BUSY_EVENTS_PER_S * 2, start=0.0, seconds=2.0)
    assert traffic.busy(end)
    assert traffic.busy(end + QUIET_S - 0.6)  # a pause in a stream of calls
    assert not traffic.busy(end + QUIET_S + 0.1)


def test_traffic_below_the_busy_rate_is_not_busy() -> None:
    traffic = Traffic(now=0.0)
    end = _events(traffic, BUSY_EVENTS_PER_S * 0.8, start=0.0, seconds=5.0)
    assert not traffic.busy(end)


def test_planning_waits_while_busy_but_not_past_the_oldest_calls_longest_wait() -> None:
    automation = _engine(now=5000.0)
    now = time.monotonic()
    automation._traffic.busy_until = now + 1.0
    automation.seen(1, "call", plan_now=True, at=5000.0)
    assert automation.deferring(now)
    automation._queue[(1, "call")] = now - DEFER_MOST_S  # it has waited long enough
    assert not automation.deferring(now)
    automation._queue[(1, "call")] = now
    automation._traffic.busy_until = now - 0.1  # quiet
    assert not automation.deferring(now)


def test_the_crm_work_is_held_back_while_busy_but_not_past_the_longest_wait() -> None:
    automation = _engine(now=5000.0)
    assert not automation.holding_back()  # calls come slowly
    traffic, now = automation._traffic, time.monotonic()
    traffic.busy_since, traffic.busy_until = now, now + 60.0
    assert automation.holding_back()
    traffic.busy_since = now - DEFER_MOST_S  # busy long enough
    assert not automation.holding_back()
    traffic.busy_until = 0.0
    assert not automation.holding_back()
    traffic.busy_since, traffic.busy_until = now, now + 60.0
    assert automation.holding_back()  # a new stretch of fast calls: held back afresh


def test_a_busy_stretch_is_timed_from_its_start_not_from_when_it_was_first_asked() -> None:
    traffic = Traffic(now=0.0)
    end = _events(traffic, BUSY_EVENTS_PER_S * 2, start=0.0, seconds=DEFER_MOST_S + 5.0)
    # nobody asked during the stretch (a replica that took the outbox's lock only now):
    # it has lasted past the bound all the same
    assert traffic.busy(end)
    assert traffic.busy_for(end) >= DEFER_MOST_S
    later = _events(traffic, BUSY_EVENTS_PER_S * 0.5, start=end + QUIET_S + 1, seconds=2.0)
    assert traffic.busy_for(later) == 0.0  # the stretch ended
    again = _events(traffic, BUSY_EVENTS_PER_S * 2, start=later, seconds=2.0)
    assert 0.0 < traffic.busy_for(again) <= 2.5  # a new one, timed afresh


def _offline(monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], list[tuple[int, str, float]]]:
    """The marks this run writes, and the calls a take-over reads, kept here (no database);
    no stopped runs."""
    saved: list[float] = []
    journal: list[tuple[int, str, float]] = []

    async def save_mark(_pool: object, _owner: object, planned_before: datetime) -> None:
        saved.append(planned_before.timestamp())

    async def stale_marks(_pool: object, *, quiet_s: float) -> list[object]:
        return []

    async def recent_entries(*_args: object, **_kwargs: object) -> list[tuple[int, str, float]]:
        return journal

    monkeypatch.setattr(engine, "save_mark", save_mark)
    monkeypatch.setattr(engine, "stale_marks", stale_marks)
    monkeypatch.setattr(engine, "recent_entries", recent_entries)
    return saved, journal


async def test_while_calls_wait_to_be_planned_the_housekeeping_keeps_the_calls_and_the_mark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved, journal = _offline(monkeypatch)
    automation = _engine(now=5000.0)
    now = time.monotonic()
    automation.seen(1, "ended-call", plan_now=False, at=6000.0)
    automation._ended(1, ["ended-call"])
    automation._live[(1, "ended-call")].last_seen = now - engine.GRACE_S - 1  # forgettable
    automation.seen(1, "queued-call", plan_now=True, at=6100.0)
    automation._traffic.busy_until = now + 60.0  # calls come fast: planning waits
    await automation._housekeep()
    assert len(automation) == 2  # nothing forgotten meanwhile
    assert saved == [6100.0 - 60]
    automation.seen(1, "later-call", plan_now=True, at=6500.0)
    automation._queue.pop((1, "queued-call"))  # planned: the true mark is later now
    automation._ended(1, ["queued-call"])
    await automation._housekeep()
    assert saved[-1] == 6100.0 - 60  # the last one reckoned: older than the true one
    journal.append((1, "dropped-call", 5500.0))
    automation.missed(5500.0)  # the serving process dropped its events: taken up from
    await automation._housekeep()  # the journal, they move the mark back at once
    assert saved[-1] == 5500.0 - 60
    assert (1, "ended-call") in automation._live
    automation._swept_at -= DEFER_MOST_S  # the calls have waited as long as they may:
    await automation._housekeep()  # walked all the same
    assert (1, "ended-call") not in automation._live
    automation._queue.clear()  # all planned, calls still come fast: nothing waits, so
    automation._ended(1, ["later-call", "dropped-call"])  # the mark is reckoned again
    await automation._housekeep()
    assert saved[-1] == 6500.0 - 60


async def test_events_dropped_while_a_take_over_reads_the_journal_are_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _offline(monkeypatch)
    automation = _engine(now=5000.0)

    async def recent_entries(*_args: object, **_kwargs: object) -> list[tuple[int, str, float]]:
        automation.missed(5600.0)  # dropped meanwhile: maybe after the read's snapshot
        return []

    monkeypatch.setattr(engine, "recent_entries", recent_entries)
    automation.missed(5500.0)
    await automation._take_over(starting=False)
    assert automation._missed_since == 5500.0  # the next take-over reads from there again


async def test_a_start_looks_again_at_the_calls_still_open_that_no_mark_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A conversation (or a lost Disconnected) planned before a restart is in no mark:
    # the start finds it among the calls with a leg open; it waits for its next event or
    # its cap, holding no mark (an hour back: a crash now would replan an hour of calls).
    _offline(monkeypatch)
    wall = 100_000.0
    automation = _engine(now=wall)
    asked: list[dict[str, float]] = []

    async def calls_with_open_legs(_pool: object, **window: float
                                   ) -> list[tuple[int, str, float]]:
        asked.append(window)
        return [(1, "talking", wall - 3600)]  # an hour quiet, a leg open

    monkeypatch.setattr(engine, "calls_with_open_legs", calls_with_open_legs)
    await automation._take_over(starting=True)
    assert asked == [{"within_s": OPEN_SILENCE, "quiet_s": SILENCE + GRACE_S}]
    key = (1, "talking")
    assert key in automation._live
    assert automation.mark() == wall - 60
    automation._sweep()
    assert key not in automation._queue  # waits for its next event or the cap
    automation._live[key].last_seen = time.monotonic() - OPEN_SILENCE - 1
    automation._live.move_to_end(key, last=False)
    automation._sweep()
    assert key in automation._queue  # at the cap: planned as ended
    await automation._take_over(starting=False)
    assert len(asked) == 1  # only a start looks


class _CrmAccounts:
    def by_id(self, account_id: int, /) -> Account | None:
        return Account(id=account_id, name=f"a{account_id}", mango_api_key=f"k{account_id}",
                       mango_api_salt="s", mango_api_url="http://pbx.test/",
                       megaplan_url="http://crm.test/", megaplan_username="u",
                       megaplan_password="p", token_hash=None, settings=Settings())


async def test_a_batch_cut_short_leaves_every_accounts_calls_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planning = asyncio.Event()

    async def plan_entries(*_args: object, **_kwargs: object) -> list[str]:
        planning.set()
        await asyncio.sleep(3600)
        return []

    monkeypatch.setattr(engine, "plan_entries", plan_entries)
    automation = CallAutomation(cast(asyncpg.Pool, None), _CrmAccounts(), clock=lambda: 5000.0)
    for account_id in (1, 2):
        automation.seen(account_id, f"call-{account_id}", plan_now=True, at=5000.0)
    batch = asyncio.create_task(automation._plan_queued())
    await planning.wait()  # the first account's calls are being planned
    batch.cancel()  # the service stops
    with contextlib.suppress(asyncio.CancelledError):
        await batch
    assert list(automation._queue) == [(1, "call-1"), (2, "call-2")]  # the mark holds both
    assert automation.mark() == 5000.0 - 60


def test_queued_calls_keep_their_order_and_their_first_time() -> None:
    automation = _engine(now=5000.0)
    for i in range(3):
        automation._enqueue((1, f"call-{i}"), float(i))
    automation._enqueue((1, "call-0"), 9.0)  # queued again: keeps its place and its time
    assert list(automation._queue.items()) == [
        ((1, "call-0"), 0.0), ((1, "call-1"), 1.0), ((1, "call-2"), 2.0)]


async def test_a_busy_planner_plans_a_new_numbers_call_once_its_wait_is_over(
    crm: Crm, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "BUSY_EVENTS_PER_S", 50.0)
    monkeypatch.setattr(engine, "DEFER_MOST_S", 3.0)
    await crm.settings(accepted_incoming="client")
    automation = crm.svc.client.app[AUTOMATION]
    account_id = await crm.db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    busy = True

    async def calls_come_fast() -> None:  # 500 events a second, of calls planned already
        n = 0
        while busy:
            for _ in range(50):
                n += 1
                automation.seen(account_id, f"noise-{n}", plan_now=False, at=time.time())
            await asyncio.sleep(0.1)

    noise = asyncio.create_task(calls_come_fast())
    try:
        await asyncio.sleep(1.5)  # a window's rate
        w = EntryWriter("while-busy")
        calls.answered(w, "79990001204", LINE, [crm.ext(0)])
        queued = time.monotonic()
        await crm.play(w.events)
        await asyncio.sleep(1.0)
        assert await crm.actions("while-busy") == []  # it waits for calls to slow down
        actions = await crm.settled("while-busy", 2, within=15)
        assert time.monotonic() - queued >= 2.5  # no sooner than its longest wait
        assert [a["action"] for a in actions] == ["create_client", "record_call"]
    finally:
        busy = False
        await noise


async def test_planning_resumes_once_calls_have_slowed_down_for_a_while(
    crm: Crm, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "BUSY_EVENTS_PER_S", 50.0)
    await crm.settings(accepted_incoming="client")
    automation = crm.svc.client.app[AUTOMATION]
    account_id = await crm.db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    for n in range(12):  # a burst: 200 events a second for 1.2 s
        for i in range(20):
            automation.seen(account_id, f"noise-{n}-{i}", plan_now=False, at=time.time())
        await asyncio.sleep(0.1)
    w = EntryWriter("after-burst")
    calls.answered(w, "79990001205", LINE, [crm.ext(0)])
    await crm.play(w.events)
    await asyncio.sleep(2.0)
    assert await crm.actions("after-burst") == []  # calls may come fast again
    actions = await crm.settled("after-burst", 2, within=15)  # DEFER_MOST_S is 120 s
    assert [a["action"] for a in actions] == ["create_client", "record_call"]


async def test_a_running_planner_takes_over_the_mark_of_a_run_that_stopped(
    crm: Crm,
) -> None:
    """A restart within the 30 s a mark takes to look stopped: the new run finds it later."""
    await crm.settings(accepted_incoming="client")
    await _journal_ended_call(crm, "lagged-while-running", "79990001206",
                              timedelta(minutes=20))
    stopped = await _stopped_run(crm, timedelta(minutes=25))
    actions = await crm.settled("lagged-while-running", 2, within=20)  # its next sweep
    assert [a["action"] for a in actions] == ["create_client", "record_call"]
    await _dropped(crm, stopped)


async def test_a_call_taken_over_that_never_ended_is_planned_as_ended_by_its_silence(
    crm: Crm, crm_factory: CrmFactory,
) -> None:
    await crm.settings(missed_incoming="client")
    w = EntryWriter("silent-20m")
    calls.offered_and_missed(w, "79990001207", LINE, [crm.ext(1)], summary=False)
    await _journal(crm, w, timedelta(minutes=20))  # legs only: no summary ever came
    await _stopped_run(crm, timedelta(minutes=25))
    await crm_factory()
    actions = await crm.settled("silent-20m", 2)
    assert [a["action"] for a in actions] == ["create_client", "record_call"]


def test_a_silent_call_with_a_leg_open_is_looked_at_once_then_at_the_cap_and_frees_the_mark(
) -> None:
    automation = _engine(now=5000.0)
    automation.seen(1, "talking", plan_now=False, at=6000.0)  # answered, then nothing
    automation.seen(1, "short", plan_now=False, at=6500.0)
    automation._ended(1, ["short"])
    key, talking = (1, "talking"), automation._live[(1, "talking")]

    def silent_for(seconds: float) -> None:
        talking.last_seen = time.monotonic() - seconds
        automation._live.move_to_end(key, last=False)  # the idle end, where the sweep reads

    silent_for(SILENCE + 1)
    automation._sweep()
    assert key in automation._queue  # planned as ended if every leg hung up
    assert automation.mark() == 6000.0 - 60  # held while that is to do
    automation._queue.clear()  # planned: not final (a leg open, or the clocks a little off)
    automation._sweep()
    assert key in automation._queue  # so again on each sweep for a grace period
    automation._queue.clear()
    silent_for(SILENCE + GRACE_S + 1)
    automation._sweep()
    assert key in automation._queue  # once more after it
    automation._queue.clear()  # planned: a leg was open, so it did not end
    automation._sweep()
    automation._sweep()
    assert key not in automation._queue  # not planned again on every sweep
    assert key in automation._live  # but remembered
    assert automation.mark() == 6500.0 - 60  # planned as far as its events go
    automation.seen(1, "talking", plan_now=False, at=6400.0)  # hung up; the summary lost
    silent_for(SILENCE + 1)
    automation._sweep()
    assert key in automation._queue  # looked at again: now it ends by its silence
    automation._queue.clear()
    silent_for(OPEN_SILENCE + 1)  # or its Disconnected was lost too: at the cap
    automation._sweep()
    assert key in automation._queue
    assert automation.mark() == 6500.0 - 60  # the cap does not take the mark hours back
    automation._queue.clear()
    automation._ended(1, ["talking"])
    automation._sweep()
    assert key not in automation._live


def test_a_call_never_planned_as_ended_is_forgotten_after_the_cap() -> None:
    automation = _engine(now=5000.0)
    automation.seen(1, "lost", plan_now=False, at=6000.0)
    automation._live[(1, "lost")].last_seen = time.monotonic() - OPEN_SILENCE - GRACE_S - 1
    automation._sweep()
    assert len(automation) == 0  # memory stays bounded, whatever the journal holds

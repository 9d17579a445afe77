"""Call automation: plans each call's CRM actions from the shared journal.

Every replica tells the engine of each event it has journaled (``seen``, a
dict update: nothing here is on the routing path). Events that can change
what a call does — an employee answered, an outgoing call started, the call
ended, a recording is ready — queue the call. The engine plans in batches,
from all of the call's journaled events (behind a balancer its legs may have
reached other replicas), by ``automation.rules``, and stores the plan in the
outbox, where an action is unique per call: planning twice is harmless.

A number no client has is planned under a per-number advisory lock, and its
client creation is remembered (``crm_new_numbers``): the same new number
calling twenty times at once, on any replicas, plans one client, and the
other calls attach to it. A call whose summary never comes is planned as
ended after 10 minutes of silence once every leg has hung up (with a leg still
open, a conversation or a wait in a queue, after ``OPEN_SILENCE``: a lost
``Disconnected``); calls are forgotten a grace period after they end, so memory
is bounded by the calls in progress.

What is still to plan lives in memory, so every few seconds the engine writes a
mark (``planner_marks``): a time before which every call it was told of is
planned. A starting engine plans again the journal's calls since the oldest
mark of the runs that no longer write theirs, or of the last 11 minutes,
whichever is longer: a planner that lagged behind when it stopped, by any
time, leaves no call unplanned.

Routing comes first. On a small machine any other work while calls come fast
shows in the routes' latency, whatever its priority (measured: two idle-policy
busy loops took the index's p50 at 1,000 calls/s from 1.6 to 22 ms on a 2-core
VM). So while events come faster than ``BUSY_EVENTS_PER_S``, and for
``QUIET_S`` after, the planner waits, up to ``DEFER_MOST_S`` for the oldest call
it has queued, and then plans in batches of at most ``_BATCH_MOST`` calls,
looking again between batches. Past that wait it plans anyway, at its usual pace.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from automation.call_model import OPEN_SILENCE, SILENCE, CallModel, JournalEvent, build_call
from automation.metrics import AutomationMetrics
from automation.rules import CREATE_CLIENT, RECORD_CALL, Party, Plan, plan_call
from cache.index import IndexRegistry
from lookup.accounts import Account
from lookup.calls import calls_with_open_legs
from lookup.conn import Conn
from lookup.db import cancel_wins
from lookup.employees import active_extensions
from lookup.journal import any_events_between, entry_events, recent_entries
from lookup.outbox import (
    NewAction,
    entries_creating_clients,
    lock_number,
    new_number_action,
    plan,
    plan_many,
    remember_new_number,
)
from lookup.phones import phone_key
from lookup.planner_marks import forget_marks, save_mark, stale_marks
from lookup.sql_lookup import decide_sql
from mango.events import CallEvent
from sync.account import megaplan_credentials

logger = logging.getLogger(__name__)

__all__ = ["BUSY_EVENTS_PER_S", "DEFER_MOST_S", "QUIET_S", "AccountSource", "CallAutomation",
           "CallFeed", "Traffic", "plan_entries", "plans_now", "worth_planning"]

GRACE_S = 60.0  # an ended call is remembered this long (late events plan nothing new)
_SWEEP_S = 5.0
_BATCH_WAIT_S = 0.05  # events that come together are planned together
# Planning a call takes ~0.1 ms of the event loop, which the PBX's triggers share: a
# batch yields after this many calls so that no route waits for more than about 1 ms.
_CALLS_PER_TURN = 8
_RETRY_S = 1.0
# After a batch the planner rests three times as long as the batch took, up to
# _REST_MOST_S: a quarter of the time while batches take under 2/3 s, more once a
# backlog makes them longer (the cap keeps a long batch from pausing planning for long).
# Its database work runs at PostgreSQL's priority, whatever the process's own, so this is
# what leaves part of the database and the cores to routing while a backlog (after a
# burst of calls, or a restart) is planned. The CRM's rate cap is far slower still.
# (Batches capped at 500 calls with this rest alone made the planner fall far behind at
# 1,000 calls/s without routing measurably better. They are capped now for another
# reason: between batches the planner looks at the traffic, below.)
_PLANNER_SHARE = 0.25
_REST_MOST_S = 2.0
# An event's arrival (the serving process's clock) and its time in the journal
# (PostgreSQL's) come in either order by up to the journal's wait and the clocks' skew.
_MARK_MARGIN_S = 60.0
# Events a second (every account's) above which the planner waits: about 400 calls a second
# of four notifications each. At 250 calls/s the benchmark's routes did not notice the
# planning beside them; at 1,000/s they did, on two cores.
BUSY_EVENTS_PER_S = 1500.0
# Calls slowed down only when they stayed slow this long: a pause of a second or two in a
# stream of calls is not the end of it.
QUIET_S = 5.0
DEFER_MOST_S = 120.0  # the longest a queued call waits for calls to slow down
_BATCH_MOST = 500  # calls a batch (about a tenth of a second): then it looks again
_RATE_WINDOW_S = 0.5
_DEFER_LOOK_S = 0.25
_STALE_MARK_S = 6 * _SWEEP_S  # a mark not written for this long: its run ended or stalled
_CATCH_UP_MOST_S = 24 * 3600.0  # how far back a start plans again, at most
_DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def plans_now(kind: str, call: CallEvent | None = None) -> bool:
    """Whether this notification can change what its call does in the CRM: an employee
    answered, an outgoing call started, the call ended, a recording is ready."""
    if kind in ("summary", "recording"):
        return True
    if kind != "call" or call is None:
        return False
    if call.call_state == "Connected":
        return call.location == "abonent"
    return (call.call_state == "Appeared" and bool(call.from_extension)
            and bool(call.to_number) and not call.to_extension)


def worth_planning(indexes: IndexRegistry | None, account_id: int, kind: str,
                   call: CallEvent | None) -> bool:
    """``plans_now``, less the calls of clients the index knows while they go on: a
    known client's call acts in the CRM only once it has ended (the repeat-call deal,
    the call record), so planning it at answer found nothing to do. Most calls are
    such calls; this halves the planner's work on them."""
    if not plans_now(kind, call):
        return False
    if kind != "call" or call is None or indexes is None:
        return True  # the end of a call (summary), a recording
    index = indexes.get(account_id)
    outside = call.to_number if call.from_extension else call.from_number
    if index is None or not outside:
        return True
    known = index.decide(outside)
    return known is None or known.client_id is None


class AccountSource(Protocol):
    def by_id(self, account_id: int, /) -> Account | None: ...


class CallFeed(Protocol):
    """What the webhooks tell the automation, wherever it runs (this process or a child:
    ``router.automation_process``)."""

    def worth_planning(self, account_id: int, kind: str, call: CallEvent | None) -> bool: ...

    def seen(self, account_id: int, entry_id: str, *, plan_now: bool, at: float) -> None:
        """An event of the call is journaled; ``at``: when it arrived (Unix seconds)."""


class Traffic:
    """How fast events come, counted in windows of ``_RATE_WINDOW_S`` as they come: busy
    while a window's rate is above ``BUSY_EVENTS_PER_S``, and for ``QUIET_S`` after."""

    __slots__ = ("_count", "_since", "busy_since", "busy_until")

    def __init__(self, now: float) -> None:
        self._count = 0
        self._since = now
        self.busy_since = 0.0  # when this busy stretch began (monotonic)
        self.busy_until = 0.0  # monotonic

    def count(self, now: float) -> None:
        self._count += 1
        elapsed = now - self._since
        if elapsed >= _RATE_WINDOW_S:
            if self._count / elapsed > BUSY_EVENTS_PER_S:
                if now >= self.busy_until:  # a new stretch
                    self.busy_since = self._since
                self.busy_until = now + QUIET_S
            self._count, self._since = 0, now

    def busy(self, now: float) -> bool:
        return now < self.busy_until

    def busy_for(self, now: float) -> float:
        """How long this busy stretch has lasted (0 when not busy)."""
        return now - self.busy_since if self.busy(now) else 0.0


class _Live:
    """What the engine remembers of a call in progress."""

    __slots__ = ("at", "ended", "last_seen", "waiting")

    def __init__(self, now: float, at: float) -> None:
        self.last_seen = now
        self.at = at  # Unix seconds, no later than the journal's time of its latest event
        self.ended = False  # planned as ended
        # planned after its silence with a leg still open: it waits for its next event or
        # ``OPEN_SILENCE`` instead of being queued on every sweep
        self.waiting = False

    def waiting_on_open_legs(self) -> bool:
        return self.waiting and not self.ended


class CallAutomation:
    """Run ``run()`` as a task; call ``seen`` for every journaled event."""

    __slots__ = (
        "_accounts",
        "_clock",
        "_indexes",
        "_live",
        "_marked",
        "_metrics",
        "_missed_since",
        "_missed_told",
        "_newest_at",
        "_owner",
        "_pool",
        "_queue",
        "_silence",
        "_swept_at",
        "_taken_over",
        "_traffic",
        "_wake",
    )

    def __init__(self, pool: asyncpg.Pool, accounts: AccountSource, *,
                 indexes: IndexRegistry | None = None, metrics: AutomationMetrics | None = None,
                 silence: float = SILENCE, clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._accounts = accounts
        self._indexes = indexes
        self._metrics = metrics
        self._silence = silence
        self._clock = clock
        # in the order last seen: the sweep reads only the idle end
        self._live: OrderedDict[tuple[int, str], _Live] = OrderedDict()
        # the calls to plan, oldest first, with when each was queued (monotonic)
        self._queue: dict[tuple[int, str], float] = {}
        self._wake = asyncio.Event()
        self._owner = uuid.uuid4()  # this run's mark
        self._newest_at = clock()  # the latest event's arrival (what came before, at start)
        self._missed_since: float | None = None  # events since then were not told (Unix s)
        self._missed_told = 0  # how many times missed() was called
        self._swept_at = time.monotonic()  # the last walk over the calls remembered
        self._taken_over: set[uuid.UUID] = set()  # marks of stopped runs this one replans
        self._marked: float | None = None  # the mark last reckoned (None: reckon it anew)
        self._traffic = Traffic(time.monotonic())

    def __len__(self) -> int:
        return len(self._live)

    def worth_planning(self, account_id: int, kind: str, call: CallEvent | None) -> bool:
        return worth_planning(self._indexes, account_id, kind, call)

    def seen(self, account_id: int, entry_id: str, *, plan_now: bool, at: float) -> None:
        now = time.monotonic()
        key = (account_id, entry_id)
        live = self._live.get(key)
        if live is None:
            self._live[key] = _Live(now, at)
        else:
            live.last_seen = now
            live.waiting = False
            live.at = max(live.at, at)
            self._live.move_to_end(key)
        self._newest_at = max(self._newest_at, at)
        self._traffic.count(now)
        if plan_now:
            self._enqueue(key, now)
            self._wake.set()

    def missed(self, since: float) -> None:
        """Events that arrived from ``since`` on were not told to this engine (the serving
        process dropped them): their calls are planned again from the journal."""
        self._missed_since = since if self._missed_since is None else min(
            self._missed_since, since)
        self._missed_told += 1
        self._marked = None  # older now
        self._wake.set()

    def _enqueue(self, key: tuple[int, str], now: float) -> None:
        if key not in self._queue:
            self._queue[key] = now

    def deferring(self, now: float) -> bool:
        """Whether planning waits now: calls come fast (or did, less than ``QUIET_S``
        ago), and the oldest queued has not waited ``DEFER_MOST_S`` yet."""
        if not self._traffic.busy(now):
            return False
        oldest = next(iter(self._queue.values()), now)
        return now - oldest < DEFER_MOST_S

    def holding_back(self) -> bool:
        """Whether the outbox's worker claims nothing new now: while calls come fast, up to
        ``DEFER_MOST_S`` into a stretch of them (then it works, busy or not, until they
        slow). Timed from the stretch's start, whenever the worker asks."""
        busy_for = self._traffic.busy_for(time.monotonic())
        return 0.0 < busy_for < DEFER_MOST_S

    async def run(self) -> None:
        """Plan what is queued, sweep the silent calls; first, take up what a previous run
        of the service may have left (the queue lives in memory), and later what any run
        that stops writing its mark leaves."""
        await self._take_over(starting=True)
        await self._save_mark()
        next_sweep = time.monotonic() + _SWEEP_S
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(_SWEEP_S):
                    await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(_BATCH_WAIT_S)
            if time.monotonic() >= next_sweep:
                await self._housekeep()
                next_sweep = time.monotonic() + _SWEEP_S
            if self._queue:
                if self.deferring(time.monotonic()):
                    await asyncio.sleep(_DEFER_LOOK_S)
                    self._wake.set()  # look again
                    continue
                started = time.monotonic()
                await self._plan_queued()
                busy = time.monotonic() - started
                await asyncio.sleep(min(_REST_MOST_S, busy * (1 / _PLANNER_SHARE - 1)))
                if self._queue:
                    self._wake.set()  # the rest of a backlog: no event may come to wake it

    async def flush(self) -> None:
        """Plan everything queued now (tests, shutdown), and say so in the mark."""
        while self._queue:
            await self._plan_queued()
        await self._save_mark()

    def mark(self) -> float:
        """A time (Unix seconds) before which every call this run was told of is planned:
        the oldest arrival among the calls still to plan (a call planned after its silence
        with a leg still open is not one), else the newest event's (the calls it has not
        heard of yet came later), less a margin for the journal's order and the clocks."""
        oldest = self._newest_at
        if self._missed_since is not None:
            oldest = min(oldest, self._missed_since)
        queue = self._queue
        capped = time.monotonic() - max(self._silence, OPEN_SILENCE)
        for key, live in self._live.items():
            if live.at >= oldest:
                continue
            if not live.waiting_on_open_legs():
                held = key in queue or not live.ended
            else:  # queued for its silence, or planned then with a leg still open: planned
                # as far as its events go, it holds the mark only while queued for that (not
                # when queued again at the cap, hours back: its next event is heard as new)
                held = key in queue and live.last_seen > capped
            if held:
                oldest = live.at
        return oldest - _MARK_MARGIN_S

    async def _housekeep(self) -> None:
        """Every ``_SWEEP_S``: forget the ended calls, queue the silent ones, take up what
        stopped runs left, write this run's mark.

        While calls wait in the queue for calls to slow down, the walks over every call
        remembered wait too, up to ``DEFER_MOST_S``: they would step over the queued
        calls, and at 1,000 calls/s (a hundred thousand of them) they took a fifth of a
        core in bursts, on the cores routing runs on. The mark written meanwhile is the
        last one reckoned, older than the true one, so it holds more calls, never fewer;
        what makes the mark older (a take-over, events the serving process dropped) has
        it reckoned at once.
        """
        now = time.monotonic()
        waiting = (bool(self._queue) and self.deferring(now)
                   and now - self._swept_at < DEFER_MOST_S)
        if not waiting:
            self._sweep()
            self._swept_at = now
        if self._metrics is not None:
            self._metrics.live_calls.set(len(self._live))
        await self._take_over(starting=False)
        await self._save_mark(reckon=not waiting)

    async def _save_mark(self, *, reckon: bool = True) -> None:
        if reckon or self._marked is None:
            self._marked = self.mark()
        try:
            await save_mark(self._pool, self._owner, datetime.fromtimestamp(self._marked, UTC))
            if self._taken_over:  # this run's mark now covers what theirs did
                await forget_marks(self._pool, list(self._taken_over))
                self._taken_over.clear()
        except _DATABASE_ERRORS as exc:
            logger.warning("automation: cannot write the planner's mark",
                           extra={"error": repr(exc)})

    async def _take_over(self, *, starting: bool) -> None:
        """Plan again the journal's calls since the oldest mark of the runs that no longer
        write theirs (stopped, crashed or stalled), or since events this run was not told
        of; at the start, of the last 11 minutes too. Every such call is queued: planning
        is idempotent, and a call that never ended is planned as ended by its silence."""
        try:
            stale = [m for m in await stale_marks(self._pool, quiet_s=_STALE_MARK_S)
                     if m[0] != self._owner]
            missed, told = self._missed_since, self._missed_told
            if not stale and missed is None and not starting:
                return
            marks = [at for _, at in stale]
            if missed is not None:
                marks.append(datetime.fromtimestamp(missed, UTC))
            since = min(marks) if marks else None
            if since is not None:
                since = await self._within_catch_up(since)
                logger.info("automation: planning again the calls since a mark",
                            extra={"since": since.isoformat(), "stopped_runs": len(stale)})
            recent = await recent_entries(
                self._pool, since=since,
                within_s=self._silence + GRACE_S if starting else None)
        except _DATABASE_ERRORS as exc:
            logger.warning("automation: cannot read recent calls", extra={"error": repr(exc)})
            return
        talking = await self._still_open() if starting or stale else []
        if missed is not None and self._missed_told == told:  # none dropped since the read
            self._missed_since = None  # queued below: the mark holds them from now on
        self._taken_over.update(owner for owner, _ in stale)
        wall, mono = self._clock(), time.monotonic()
        for account_id, entry_id, last_at in recent:
            key = (account_id, entry_id)
            if key not in self._live:
                self._live[key] = _Live(mono - max(0.0, wall - last_at), last_at)
            self._enqueue(key, mono)
        for account_id, entry_id, last_at in talking:  # planned as far as their events go:
            key = (account_id, entry_id)  # they wait for the next or the cap, and hold no
            if key not in self._live:  # mark (one hours back would replan hours of calls)
                live = self._live[key] = _Live(mono - max(0.0, wall - last_at), last_at)
                live.waiting = True
        if recent or talking:
            self._live = OrderedDict(sorted(self._live.items(),
                                            key=lambda kv: kv[1].last_seen))
            self._marked = None  # older now
            self._wake.set()

    async def _still_open(self) -> list[tuple[int, str, float]]:
        """The calls of the last 12 hours with a leg still open and quiet past their
        silence (a conversation, or a lost ``Disconnected``), which no mark holds: a start,
        or a take-over of a stopped run, looks at them again at their cap."""
        try:
            return await calls_with_open_legs(self._pool, within_s=max(self._silence,
                                                                       OPEN_SILENCE),
                                              quiet_s=self._silence + GRACE_S)
        except _DATABASE_ERRORS as exc:
            logger.warning("automation: cannot read the calls still open",
                           extra={"error": repr(exc)})
            return []

    async def _within_catch_up(self, since: datetime) -> datetime:
        """``since``, or the oldest time a start plans again, if later (an error in the log
        when calls are left before it)."""
        oldest = datetime.fromtimestamp(self._clock() - _CATCH_UP_MOST_S, UTC)
        if since >= oldest:
            return since
        if await any_events_between(self._pool, since, oldest):
            logger.error("automation: a stopped planner was far behind; calls older than "
                         "the catch-up window are left unplanned",
                         extra={"mark": since.isoformat(), "window_s": _CATCH_UP_MOST_S})
        return oldest

    def _sweep(self) -> None:
        now = time.monotonic()
        cap = max(self._silence, OPEN_SILENCE)
        gone: list[tuple[int, str]] = []
        for key, live in self._live.items():  # from the idle end; no copy of the whole dict
            idle = now - live.last_seen
            if idle < GRACE_S:
                break  # the rest were seen later still
            if key in self._queue:
                continue  # still to plan: its mark stays
            if live.ended or idle >= cap + GRACE_S:
                gone.append(key)  # a call that never ends is bounded all the same
            elif idle >= cap or (idle >= self._silence and not live.waiting_on_open_legs()):
                # planned as ended if every leg hung up (is_final sees the silence too;
                # queued on every sweep for a grace period, as a clock between here and
                # the database's may be a little off); a conversation sends nothing while
                # it lasts: with a leg open it is not ended, and after that grace period
                # it is looked at again at the cap or when its next event comes
                if idle >= self._silence + GRACE_S:
                    live.waiting = True
                self._enqueue(key, now)
        for key in gone:
            del self._live[key]

    async def _plan_queued(self) -> None:
        """The oldest ``_BATCH_MOST`` queued calls."""
        taken = {key: self._queue.pop(key)
                 for key in list(itertools.islice(self._queue, _BATCH_MOST))}
        by_account: dict[int, list[str]] = {}
        for account_id, entry_id in taken:
            by_account.setdefault(account_id, []).append(entry_id)
        left = dict(taken)  # not planned yet (an error, a cancel): queued again below
        try:
            for account_id, entries in by_account.items():
                account = self._accounts.by_id(account_id)
                ended: Iterable[str] = entries  # no CRM: nothing to plan, ever
                if account is not None and megaplan_credentials(account) is not None:
                    try:
                        ended = await plan_entries(
                            self._pool, account, entries, now=self._clock(),
                            silence=self._silence, indexes=self._indexes,
                            metrics=self._metrics)
                    except Exception as exc:
                        cancel_wins(exc)
                        logger.warning("automation: cannot plan now; will retry",
                                       exc_info=not isinstance(exc, _DATABASE_ERRORS),
                                       extra={"account": account.name, "error": repr(exc)})
                        await asyncio.sleep(_RETRY_S)
                        continue
                for entry_id in entries:
                    del left[(account_id, entry_id)]
                self._ended(account_id, ended)
        finally:
            if left:  # planned again later, first, as long queued as they were
                self._queue = left | self._queue

    def _ended(self, account_id: int, entries: Iterable[str]) -> None:
        for entry_id in entries:
            live = self._live.get((account_id, entry_id))
            if live is not None:
                live.ended = True


async def plan_entries(pool: asyncpg.Pool, account: Account, entries: Sequence[str], *,
                       now: float, silence: float = SILENCE,
                       indexes: IndexRegistry | None = None,
                       metrics: AutomationMetrics | None = None) -> list[str]:
    """Plan these calls from the journal; the ones that have ended.

    Calls of clients the index knows (most of them) are stored together in one
    statement; a number no client has is planned alone, under its lock. A call
    that cannot be planned (an event the rules cannot read) is logged and left.
    """
    ended: list[str] = []
    index = indexes.get(account.id) if indexes is not None else None
    settings = account.settings
    async with pool.acquire() as con:
        journal = await entry_events(con, account.id, entries)
        employees = await active_extensions(con, account.id)
        creating = await entries_creating_clients(con, account.id, entries)
        known_plans: list[NewAction] = []
        for done, (entry_id, events) in enumerate(journal.items()):
            if done % _CALLS_PER_TURN == _CALLS_PER_TURN - 1:
                await asyncio.sleep(0)  # routing's turn: a trigger never waits for a batch
            if not events:
                continue
            final = False
            try:
                call = build_call(JournalEvent(kind=e.kind, payload=e.payload,
                                               received_at=e.received_at) for e in events)
                final = call.is_final(now, silence)
                key = (phone_key(call.number, settings.default_region)
                       if call.direction in ("in", "out") and call.number else None)
                if key is None:
                    if final:
                        ended.append(entry_id)
                    continue
                known = index.decide_key(key) if index is not None else None
                if entry_id not in creating and known is not None \
                        and known.client_id is not None:
                    party = Party(client_id=known.client_id, responsible_id=known.employee_id)
                    plans = plan_call(call, settings, party, employees, phone_key=key,
                                      final=final)
                    if any(p.follows_record for p in plans):  # waits on its first record
                        async with con.transaction():
                            stored = await _store(con, account, entry_id, key, party, plans)
                        _count_planned(metrics, account, stored)
                    else:
                        known_plans.extend(
                            NewAction(entry_id=entry_id, action=p.action, subject=p.subject,
                                      payload=p.payload, dry_run=settings.dry_run)
                            for p in plans)
                else:
                    await _plan_new(con, account, call, key, employees, final, metrics,
                                    created=creating.get(entry_id, _NOT_CREATING))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                raise
            except Exception:
                logger.exception("automation: a call could not be planned",
                                 extra={"account": account.name, "entry_id": entry_id})
            if final:
                ended.append(entry_id)
        if known_plans:
            _count_planned(metrics, account, await plan_many(con, account.id, known_plans))
    return ended


_NOT_CREATING = "\x00"  # marks a call that planned no client of its own


async def _plan_new(con: Conn, account: Account, call: CallModel, key: int,
                    employees: dict[str, str], final: bool, metrics: AutomationMetrics | None,
                    *, created: str | None) -> None:
    """A number the index does not know: decided under its lock, from the database."""
    async with con.transaction():
        if created != _NOT_CREATING:  # the number was new when this call began: its client
            party = Party(created_responsible=created)
        else:
            await lock_number(con, account.id, key)
            # The create still pending first, then the copy: the worker puts a client it
            # made in the copy before it marks the create done, so a create that lands
            # between the two reads is seen by the second. The other way round, both
            # could miss it, and the number got a second client.
            pending = await new_number_action(con, account.id, key)
            decision = await decide_sql(con, account.id, key)
            if decision.client_id is not None:
                party = Party(client_id=decision.client_id, responsible_id=decision.employee_id)
            elif pending is not None and pending[1] != call.entry_id:
                party = Party(pending_action=pending[0],
                              pending_responsible=pending[2].get("responsible_id"))
            else:
                party = Party()
        plans = plan_call(call, account.settings, party, employees, phone_key=key, final=final)
        stored = await _store(con, account, call.entry_id, key, party, plans)
    _count_planned(metrics, account, stored)  # once committed: a rolled back one is planned again


def _count_planned(metrics: AutomationMetrics | None, account: Account,
                   actions: Iterable[str]) -> None:
    """Actions new in the outbox, counted once their statement or transaction committed."""
    if metrics is not None:
        for action in actions:
            metrics.planned.labels(account.name, action).inc()


async def _store(con: Conn, account: Account, entry_id: str, key: int, party: Party,
                 plans: Iterable[Plan]) -> list[str]:
    """The plans into the outbox (in the caller's transaction); the kinds of the actions
    new there."""
    dry_run = account.settings.dry_run
    created: int | None = None
    recorded: int | None = None
    stored: list[str] = []
    for p in plans:
        if p.follows_record:
            depends_on = recorded
        elif p.client == "new":
            depends_on = created
        else:
            depends_on = party.pending_action if p.client == "pending" else None
        action_id, new = await plan(con, account.id, NewAction(
            entry_id=entry_id, action=p.action, subject=p.subject, payload=p.payload,
            depends_on=depends_on, dry_run=dry_run))
        if p.action == CREATE_CLIENT:
            created = action_id
            if new and not dry_run:  # a dry run makes no client for later calls to wait on
                await remember_new_number(con, account.id, key, action_id)
        elif p.action == RECORD_CALL and not p.follows_record:
            recorded = action_id
        if new:
            stored.append(p.action)
    return stored

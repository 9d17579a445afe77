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
ended after 10 minutes of silence; calls are forgotten a grace period after
they end, so memory is bounded by the calls in progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from typing import Protocol

import asyncpg

from automation.call_model import SILENCE, CallModel, JournalEvent, build_call
from automation.metrics import AutomationMetrics
from automation.rules import CREATE_CLIENT, Party, Plan, plan_call
from cache.index import IndexRegistry
from lookup.accounts import Account
from lookup.conn import Conn
from lookup.employees import active_extensions
from lookup.journal import entry_events
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
from lookup.sql_lookup import decide_sql
from mango.events import CallEvent

logger = logging.getLogger(__name__)

__all__ = ["AccountSource", "CallAutomation", "plan_entries", "plans_now"]

GRACE_S = 60.0  # an ended call is remembered this long (late events plan nothing new)
_SWEEP_S = 5.0
_BATCH_WAIT_S = 0.05  # events that come together are planned together
_RETRY_S = 1.0


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


class AccountSource(Protocol):
    def by_id(self, account_id: int, /) -> Account | None: ...


class _Live:
    """What the engine remembers of a call in progress."""

    __slots__ = ("ended", "last_seen")

    def __init__(self, now: float) -> None:
        self.last_seen = now
        self.ended = False


class CallAutomation:
    """Run ``run()`` as a task; call ``seen`` for every journaled event."""

    __slots__ = ("_accounts", "_clock", "_indexes", "_live", "_metrics", "_pool", "_queue",
                 "_silence", "_wake")

    def __init__(self, pool: asyncpg.Pool, accounts: AccountSource, *,
                 indexes: IndexRegistry | None = None, metrics: AutomationMetrics | None = None,
                 silence: float = SILENCE, clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._accounts = accounts
        self._indexes = indexes
        self._metrics = metrics
        self._silence = silence
        self._clock = clock
        self._live: dict[tuple[int, str], _Live] = {}
        self._queue: set[tuple[int, str]] = set()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._live)

    def seen(self, account_id: int, entry_id: str, *, plan_now: bool) -> None:
        key = (account_id, entry_id)
        live = self._live.get(key)
        if live is None:
            self._live[key] = _Live(time.monotonic())
        else:
            live.last_seen = time.monotonic()
        if plan_now:
            self._queue.add(key)
            self._wake.set()

    async def run(self) -> None:
        next_sweep = time.monotonic() + _SWEEP_S
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _SWEEP_S)
            self._wake.clear()
            await asyncio.sleep(_BATCH_WAIT_S)
            if time.monotonic() >= next_sweep:
                self._sweep()
                next_sweep = time.monotonic() + _SWEEP_S
            if self._queue:
                await self._plan_queued()

    async def flush(self) -> None:
        """Plan everything queued now (tests, shutdown)."""
        while self._queue:
            await self._plan_queued()

    def _sweep(self) -> None:
        now = time.monotonic()
        for key, live in list(self._live.items()):
            idle = now - live.last_seen
            if live.ended and idle >= GRACE_S:
                del self._live[key]
            elif not live.ended and idle >= self._silence:
                self._queue.add(key)  # planned as ended: is_final sees the silence too
            if idle >= self._silence + GRACE_S:
                self._live.pop(key, None)  # never ends? bounded all the same
        if self._metrics is not None:
            self._metrics.live_calls.set(len(self._live))

    async def _plan_queued(self) -> None:
        batch, self._queue = self._queue, set()
        by_account: dict[int, list[str]] = {}
        for account_id, entry_id in batch:
            by_account.setdefault(account_id, []).append(entry_id)
        for account_id, entries in by_account.items():
            account = self._accounts.by_id(account_id)
            if account is None:
                continue
            try:
                ended = await plan_entries(self._pool, account, entries, now=self._clock(),
                                           silence=self._silence, indexes=self._indexes,
                                           metrics=self._metrics)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("automation: cannot plan now; will retry",
                               extra={"account": account.name, "error": repr(exc)})
                self._queue.update((account_id, e) for e in entries)
                await asyncio.sleep(_RETRY_S)
                continue
            for entry_id in ended:
                live = self._live.get((account_id, entry_id))
                if live is not None:
                    live.ended = True


async def plan_entries(pool: asyncpg.Pool, account: Account, entries: Sequence[str], *,
                       now: float, silence: float = SILENCE,
                       indexes: IndexRegistry | None = None,
                       metrics: AutomationMetrics | None = None) -> list[str]:
    """Plan these calls from the journal; the ones that have ended.

    Calls of clients the index knows (most of them) are stored together in one
    statement; a number no client has is planned alone, under its lock.
    """
    ended: list[str] = []
    index = indexes.get(account.id) if indexes is not None else None
    settings = account.settings
    async with pool.acquire() as con:
        journal = await entry_events(con, account.id, entries)
        employees = await active_extensions(con, account.id)
        creating = await entries_creating_clients(con, account.id, entries)
        known_plans: list[NewAction] = []
        for entry_id, events in journal.items():
            if not events:
                continue
            call = build_call(JournalEvent(kind=e.kind, payload=e.payload,
                                           received_at=e.received_at) for e in events)
            final = call.is_final(now, silence)
            if final:
                ended.append(entry_id)
            if call.direction not in ("in", "out") or not call.number:
                continue
            key = phone_key(call.number, settings.default_region)
            if key is None:
                continue
            known = index.decide_key(key) if index is not None else None
            if entry_id not in creating and known is not None and known.client_id is not None:
                party = Party(client_id=known.client_id, responsible_id=known.employee_id)
                known_plans.extend(
                    NewAction(entry_id=entry_id, action=p.action, subject=p.subject,
                              payload=p.payload, dry_run=settings.dry_run)
                    for p in plan_call(call, settings, party, employees, phone_key=key,
                                       final=final))
            else:
                await _plan_new(con, account, call, key, employees, final, metrics,
                                creates_client=entry_id in creating)
        if known_plans:
            for action in await plan_many(con, account.id, known_plans):
                if metrics is not None:
                    metrics.planned.labels(action).inc()
    return ended


async def _plan_new(con: Conn, account: Account, call: CallModel, key: int,
                    employees: dict[str, str], final: bool, metrics: AutomationMetrics | None,
                    *, creates_client: bool) -> None:
    """A number the index does not know: decided under its lock, from the database."""
    async with con.transaction():
        if creates_client:  # the number was new when this call began: this call's client
            party = Party()
        else:
            await lock_number(con, account.id, key)
            decision = await decide_sql(con, account.id, key)
            if decision.client_id is not None:
                party = Party(client_id=decision.client_id, responsible_id=decision.employee_id)
            elif (pending := await new_number_action(con, account.id, key)) is not None:
                party = Party(pending_action=pending[0],
                              pending_responsible=pending[1].get("responsible_id"))
            else:
                party = Party()
        plans = plan_call(call, account.settings, party, employees, phone_key=key, final=final)
        await _store(con, account, call.entry_id, key, party, plans, metrics)


async def _store(con: Conn, account: Account, entry_id: str, key: int, party: Party,
                 plans: Iterable[Plan], metrics: AutomationMetrics | None) -> None:
    dry_run = account.settings.dry_run
    created: int | None = None
    for p in plans:
        depends_on = created if p.client == "new" else (
            party.pending_action if p.client == "pending" else None)
        action_id, new = await plan(con, account.id, NewAction(
            entry_id=entry_id, action=p.action, subject=p.subject, payload=p.payload,
            depends_on=depends_on, dry_run=dry_run))
        if p.action == CREATE_CLIENT:
            created = action_id
            if not dry_run:  # a dry run makes no client for the number's next calls to wait on
                await remember_new_number(con, account.id, key, action_id)
        if new and metrics is not None:
            metrics.planned.labels(p.action).inc()

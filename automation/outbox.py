"""The outbox's worker: applies planned CRM actions until each has landed.

Every replica runs one; per account, the replica holding the account's
advisory lock works its actions, so the account's CRM rate cap
(``MEGAPLAN_RATE``) holds across replicas. It claims due actions (``FOR
UPDATE SKIP LOCKED``, one lease ahead), applies them concurrently under the
cap, claiming more while half of a claim is still under way so that the cap
is used without a pause (nor does a slow action hold the others back), and
records each outcome: done (with the CRM id), retried later with
backoff (the CRM down, slow, throttling; an uncertain create is looked for
before it is made again), or failed for good (the CRM refused it as it is).
A planned action wakes it at once through ``NOTIFY mango_outbox``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

import aiohttp
import asyncpg

from automation.actions import ActionApplier, DependencyFailed
from automation.metrics import AutomationMetrics
from lookup.account_lock import supervise, while_locked
from lookup.accounts import Account
from lookup.outbox import (
    ActionRow,
    claim_due,
    complete,
    fail,
    give_back,
    outbox_depth,
    release_leases,
    retry_later,
)
from megaplan.client import MegaplanClient
from megaplan.errors import (
    MegaplanAuthError,
    MegaplanError,
    MegaplanUnavailableError,
    MegaplanUncertainError,
)
from sync.account import CrmHealth, crm_observer, megaplan_credentials

logger = logging.getLogger(__name__)

__all__ = ["LOCK_CLASS", "OutboxWorker", "backoff_s"]

LOCK_CLASS = 0x4F555442  # "OUTB": pg_try_advisory_lock(LOCK_CLASS, account id)
_SUPERVISE_S = 1.0
_LOCK_RETRY_S = 2.0
_IDLE_S = 1.0  # due retries are looked for at least this often
_CLAIM_GAP_S = 0.05  # while actions are under way and nothing more was due
_HOLD_LOOK_S = 0.25  # held back: how often to look again
_LEASE_S = 600.0  # a claimed action comes back after this if its worker vanished
# A new holder of the lock takes back claims at least this old: a worker that lost its
# lock has given up its requests by then (their timeout, the rate limiter's queue).
_LEASE_HELD_S = 120.0
# A stopping worker gives back what it had not finished (waiting at most _GIVE_BACK_WAIT),
# due again after its request timeout and _GIVE_BACK_AFTER_S more: a request cut short
# that the CRM still acts on has landed by then, and the check before a create finds it.
_GIVE_BACK_WAIT = 2.0
_GIVE_BACK_AFTER_S = 5.0
# A create that may have landed (a timeout, a 5xx, a lost answer) is looked for no
# sooner than this after its answer: a CRM still at work on it (a slow backend behind a
# gateway's 504) has made it by then. Backoff alone made it 0.5-1 s.
_UNCERTAIN_WAIT_S = _GIVE_BACK_AFTER_S
_LOCK_CHECK_S = 5.0
_BACKOFF_BASE_S = 1.0
_BACKOFF_CAP_S = 30.0  # a CRM back from an outage is found within this
_PERMANENT = frozenset({400, 403, 404, 409, 422})
_CREATES = frozenset({"create_client", "create_deal"})  # never sent again blind
# The CRM refused the account's credentials (a changed password, a blocked user): not
# the action's fault, so never a failure for good; the account's claims pause this long
# (not every claimed action asking for a token with a wrong password, again and again).
_AUTH_PAUSE_S = 60.0
_METRICS_S = 5.0


class AccountSource(Protocol):
    def all(self) -> list[Account]: ...

    def by_id(self, account_id: int, /) -> Account | None: ...


def backoff_s(attempts: int, rng: random.Random | None = None) -> float:
    """Exponential with full jitter, capped: 1, 2, 4 … 30 s."""
    ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class OutboxWorker:
    """Run ``run()`` as a task; cancelling it stops every account's loop."""

    __slots__ = ("_accounts", "_concurrency", "_dsn", "_health", "_hold", "_metrics", "_pool",
                 "_rate", "_request_timeout")

    def __init__(self, dsn: str, pool: asyncpg.Pool, accounts: AccountSource, *, rate: float,
                 metrics: AutomationMetrics | None = None, concurrency: int | None = None,
                 request_timeout: float = 20.0, health: CrmHealth | None = None,
                 hold: Callable[[], bool] | None = None) -> None:
        """``hold``: whether to claim nothing new for now (routing first: the engine's
        ``CallAutomation.holding_back``); what is under way goes on."""
        self._dsn = dsn
        self._hold = hold
        self._pool = pool
        self._accounts = accounts
        self._rate = rate
        self._metrics = metrics
        self._health = health
        # enough requests in flight to use the whole rate cap while the CRM takes up to a
        # second to answer each
        self._concurrency = concurrency or max(4, min(256, math.ceil(rate)))
        self._request_timeout = request_timeout

    async def run(self) -> None:
        metrics = asyncio.create_task(self._measure(), name="outbox-metrics")
        try:
            await supervise("outbox", self._wanted, self._account_loop, every=_SUPERVISE_S)
        finally:
            metrics.cancel()
            with suppress(asyncio.CancelledError):
                await metrics

    def _wanted(self) -> list[int]:
        return [a.id for a in self._accounts.all() if megaplan_credentials(a)]

    async def _account_loop(self, account_id: int) -> None:
        await while_locked(self._dsn, "outbox", LOCK_CLASS, account_id,
                           lambda con: self._work(con, account_id),
                           wanted=lambda: self._account(account_id) is not None,
                           retry_s=_LOCK_RETRY_S)

    def _account(self, account_id: int) -> Account | None:
        account = self._accounts.by_id(account_id)
        return account if account is not None and megaplan_credentials(account) else None

    async def _work(self, lock: asyncpg.Connection, account_id: int) -> None:
        """Work the account's actions while this connection holds its lock."""
        wake = asyncio.Event()

        def notified(_con: object, _pid: int, _channel: str, payload: object) -> None:
            if payload == str(account_id):
                wake.set()

        await lock.add_listener("mango_outbox", notified)
        await release_leases(lock, account_id, older_than_s=_LEASE_HELD_S)
        account = self._account(account_id)
        assert account is not None
        credentials = megaplan_credentials(account)
        assert credentials is not None
        limit = asyncio.Semaphore(self._concurrency)
        # Claimed and not finished. More are claimed while half of them are left, so the
        # rate cap is used to the end of a claim (waiting for a whole claim to finish
        # left the CRM idle for a round trip each time: 5 % of the rate at 150 ms).
        queued: set[asyncio.Task[str]] = set()
        # each one's action and its attempts, to give back if it is cut short
        claimed: dict[asyncio.Task[str], tuple[int, int]] = {}
        failures: list[BaseException] = []  # an outcome that could not be recorded
        most, refill = self._concurrency * 4, self._concurrency * 2
        clock = asyncio.get_running_loop().time
        next_claim = next_lock_check = paused_until = 0.0

        def finished(task: asyncio.Task[str]) -> None:
            nonlocal paused_until
            queued.discard(task)
            if task.cancelled():
                return  # cut short: its claim is given back
            claimed.pop(task, None)
            if (failure := task.exception()) is not None:
                failures.append(failure)
            elif task.result() == "auth":
                paused_until = clock() + _AUTH_PAUSE_S

        async with MegaplanClient(credentials, rate_per_second=self._rate,
                                  request_timeout=self._request_timeout,
                                  observer=crm_observer(account_id, self._health)) as crm:
            applier = ActionApplier(crm, self._pool, account)
            logger.info("outbox: working the CRM actions", extra={"account": account.name})
            try:
                while (now := self._account(account_id)) is not None:
                    if failures:
                        raise failures[0]
                    if megaplan_credentials(now) != credentials:
                        await asyncio.gather(*queued, return_exceptions=True)  # under way
                        return  # new credentials: start again with a new client
                    applier.account = now
                    t = clock()
                    if t >= next_lock_check:  # the lock lives as long as its connection:
                        # a dead one ends the work (another replica may hold it by now)
                        await lock.fetchval("SELECT 1", timeout=_LOCK_CHECK_S)
                        next_lock_check = t + _IDLE_S
                    # dry_run turned on: nothing is written to the CRM, actions planned
                    # before it included; they wait, and go once it is turned off
                    if (self._hold is not None and self._hold()) or t < paused_until \
                            or now.settings.dry_run:
                        await _first_of(queued, None, _HOLD_LOOK_S)
                        continue
                    if len(queued) <= refill and (not queued or wake.is_set() or t >= next_claim):
                        wake.clear()
                        want = most - len(queued)
                        async with self._pool.acquire() as con:
                            rows = await claim_due(
                                con, account_id, limit=want, lease_s=_LEASE_S,
                                under_way=[action_id for action_id, _ in claimed.values()])
                        for row in rows:
                            task = asyncio.create_task(self._one(applier, row, limit))
                            queued.add(task)
                            claimed[task] = (row.id, row.attempts)
                            task.add_done_callback(finished)
                        # nothing more is due: look again when one finishes (its dependents
                        # may be due then), something is planned, or a moment has passed
                        next_claim = t if len(rows) == want else t + _CLAIM_GAP_S
                        if not queued:
                            await _first_of(queued, wake, _IDLE_S)
                            continue
                    if len(queued) > refill:
                        await _first_of(queued, None, _IDLE_S)
                    else:
                        await _first_of(queued, wake, max(0.0, next_claim - clock()))
            finally:
                for task in queued:
                    task.cancel()
                await asyncio.gather(*queued, return_exceptions=True)
                if claimed:  # due again now, not when their leases run out (10 minutes)
                    await self._give_back(list(claimed.values()))

    async def _give_back(self, claims: list[tuple[int, int]]) -> None:
        try:
            async with asyncio.timeout(_GIVE_BACK_WAIT):
                async with self._pool.acquire() as con:
                    await give_back(con, claims,
                                    after_s=self._request_timeout + _GIVE_BACK_AFTER_S)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # their leases run out instead (or a new holder's start gives them back)
            logger.warning("outbox: could not give back unfinished claims",
                           extra={"actions": len(claims), "error": repr(exc)})

    async def _one(self, applier: ActionApplier, row: ActionRow,
                   limit: asyncio.Semaphore) -> str:
        async with limit:
            outcome = await self._apply(applier, row)
        if self._metrics is not None:
            self._metrics.actions.labels(applier.account.name, row.action, outcome).inc()
        return outcome

    async def _apply(self, applier: ActionApplier, row: ActionRow) -> str:
        try:
            crm_id, note = await applier.apply(row)
        except (DependencyFailed, ValueError, KeyError, TypeError) as exc:
            # nothing to act on, or a planned payload the CRM call cannot be made from:
            # trying again would not help
            await self._fail(row, _describe(exc))
            return "failed"
        except MegaplanUncertainError as exc:
            await self._later(row, exc, uncertain=True)
            return "uncertain"
        except MegaplanUnavailableError as exc:
            await self._later(row, exc)
            return "retry"
        except MegaplanAuthError as exc:  # the credentials, not the action: it waits
            await self._later(row, exc, delay_s=_AUTH_PAUSE_S)
            return "auth"
        except MegaplanError as exc:
            if exc.status in _PERMANENT:
                await self._fail(row, str(exc))
                return "failed"
            await self._later(row, exc)
            return "retry"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            await self._later(row, exc, uncertain=row.action in _CREATES)
            return "retry"
        except Exception as exc:  # a bug must not stop the outbox; the action waits
            logger.exception("outbox: an action failed unexpectedly",
                             extra={"action": row.action, "id": row.id})
            await self._later(row, exc)
            return "retry"
        async with self._pool.acquire() as con:
            await complete(con, row.id, crm_id=crm_id, note=note)
        return "done"

    async def _later(self, row: ActionRow, exc: BaseException, *, uncertain: bool = False,
                     delay_s: float | None = None) -> None:
        delay = backoff_s(row.attempts) if delay_s is None else delay_s
        if uncertain:
            delay = max(delay, _UNCERTAIN_WAIT_S)
        logger.warning("outbox: %s not applied (attempt %d); again in %.1f s",
                       row.action, row.attempts, delay,
                       extra={"id": row.id, "error": _describe(exc), "uncertain": uncertain})
        async with self._pool.acquire() as con:
            await retry_later(con, row.id, error=_describe(exc), delay_s=delay,
                              uncertain=uncertain)

    async def _fail(self, row: ActionRow, error: str) -> None:
        logger.error("outbox: %s failed for good", row.action,
                     extra={"id": row.id, "error": error})
        async with self._pool.acquire() as con:
            await fail(con, row.id, error=error)

    async def _measure(self) -> None:
        """Outbox depth and oldest age per account, for /metrics."""
        if self._metrics is None:
            return
        while True:
            with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                found = {a: (d, o) for a, d, o in await outbox_depth(self._pool)}
                for account in self._accounts.all():
                    depth, oldest = found.get(account.id, (0, 0.0))
                    self._metrics.depth.labels(account.name).set(depth)
                    self._metrics.oldest.labels(account.name).set(oldest)
            await asyncio.sleep(_METRICS_S)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


async def _first_of(tasks: set[asyncio.Task[str]], wake: asyncio.Event | None,
                    within: float) -> None:
    """Until one of ``tasks`` finishes, ``wake`` is set, or ``within`` seconds pass."""
    if not tasks and wake is None:  # nothing to wait on but the time (a held-back worker)
        await asyncio.sleep(within)
        return
    woken = asyncio.ensure_future(wake.wait()) if wake is not None else None
    try:
        await asyncio.wait({*tasks, *((woken,) if woken else ())}, timeout=within,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        if woken is not None:
            woken.cancel()

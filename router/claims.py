"""Never two routes for one entry: a claim per entry, in this process and across replicas.

The process claim is a bounded in-memory set. The replica claim is an INSERT
that only one replica can win. While this replica routes alone (``solo``, kept
by router.replicas), nobody else can receive the trigger: the claim is queued
to be written after the route and the hot path does not wait for it. Otherwise
the route waits for its claim: claims that arrive together go out together
(one statement per batch, group-commit style), so a burst of calls costs a
few round trips, not one each. A caller waits a few milliseconds at most; if
the database does not answer in time, or is down, routing goes on from memory
with the process claim alone (a late route is worse than a rare duplicate
while the database is unhealthy). A statement that answers late still lands,
so the other replicas still see the claim.

The claim touches ``route_claims`` only (an unlogged table). Whether the call
already ended is known from the events this process received, checked before
and after the claim: reading the journal in the same statement measured at
twice the claim's latency under load.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from contextlib import suppress

import asyncpg

from router.batcher import give_up
from router.stopping import stop_tasks

logger = logging.getLogger(__name__)

__all__ = ["Claims", "claim_key", "forget_old_claims", "prepare_claim"]

_REMEMBER = 200_000  # entries remembered per process (a few hours of heavy traffic)
_BATCH = 500
_RECENT = "10 minutes"  # a re-sent trigger comes within seconds; claims this young count
_SOLO_SPACING = 0.02  # solo claims: at most one statement per 20 ms, not one per call
_CHUNK = 20_000  # remembered claims taken in per turn of the event loop
_RETRY = 0.1  # seconds between attempts to write claims owed from solo routing
_STATEMENT_WAIT = 2.0  # a claim statement that takes longer is cancelled (and retried)
_FORGET = "1 day"  # claims older than this are deleted: an entry never lasts that long

_CLAIM = """
INSERT INTO route_claims (account_id, entry_id)
SELECT * FROM unnest($1::int4[], $2::text[])
ON CONFLICT DO NOTHING
RETURNING account_id, entry_id
"""


async def prepare_claim(con: asyncpg.Connection) -> None:
    """Pool ``init``: parse the claim once per connection, not on the first call's clock."""
    await con.prepare(_CLAIM)


async def forget_old_claims(pool: asyncpg.Pool) -> None:
    """Delete claims older than a day (the app's hourly housekeeping)."""
    await pool.execute(
        f"DELETE FROM route_claims WHERE claimed_at < now() - interval '{_FORGET}'")


def claim_key(account_id: int, entry_or_call: str) -> str:
    """The in-memory key of an entry or a leg (str: the garbage collector skips str)."""
    return f"{account_id}:{entry_or_call}"


# account, entry, and the waiting route's answer (None: written after the route, solo)
_Ask = tuple[int, str, "asyncio.Future[bool | None] | None"]


def _owed(ask: _Ask) -> bool:
    """Owed by a solo route (nobody waits for its answer)."""
    return ask[2] is None


_TOLD_S = 10.0  # one warning of a kind at most this often: a slow database must not flood
# the log with one a call


class _Warning:
    """A warning about claims, logged the first time at once, then at most once every
    ``_TOLD_S`` with how many claims it was about since (``claims``)."""

    __slots__ = ("_claims", "_message", "_told_at")

    def __init__(self, message: str) -> None:
        self._message = message
        self._claims = 0
        self._told_at = -math.inf  # monotonic

    def happened(self, claims: int, **extra: object) -> None:
        self._claims += claims
        now = time.monotonic()
        if now - self._told_at >= _TOLD_S:
            logger.warning(self._message, extra={**extra, "claims": self._claims})
            self._claims, self._told_at = 0, now


class Claims:
    __slots__ = ("_ended", "_failed", "_late", "_local", "_owed", "_pending", "_pool",
                 "_settled", "_task", "_urgent", "_wake", "_within", "held", "lease_until",
                 "solo")

    def __init__(self, pool: asyncpg.Pool, *, within_ms: int) -> None:
        self._pool = pool
        self._within = within_ms / 1000
        # string keys: the garbage collector does not track str, it tracks tuples
        self._local: OrderedDict[str, None] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._pending: list[_Ask] = []
        # claims owed by solo routes: queued and written so far (written in queue order)
        self._owed = 0
        self._settled = 0
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # a claim somebody waits for is queued
        # set by router.replicas.ReplicaLock: routing alone; holding the replicas' lock;
        # until when both may be believed (monotonic clock)
        self.solo = False
        self.held = False
        self.lease_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._late = _Warning("route claims not answered in time; routing from memory")
        self._failed = _Warning("route claims failed; routing from memory")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="route-claims")

    async def close(self, *, within: float = 5.0) -> None:
        """Write the claims still owed (for up to ``within`` seconds), then stop."""
        try:
            await self.flush(within=within)
        except TimeoutError:
            logger.error("claims owed by solo routes not all written at shutdown",
                         extra={"claims": self._owed - self._settled})
        if self._task is not None:
            await stop_tasks(self._task)

    def claim_here(self, key: str) -> bool:
        """Ours in this process (``key``: claim_key of the entry), unless seen before."""
        if key in self._local:
            return False
        self._local[key] = None
        if len(self._local) > _REMEMBER:
            self._local.popitem(last=False)
        return True

    async def remember_recent(self, con: asyncpg.Connection, *, within: float) -> int:
        """Take every replica's recent claims in as this process's own (before routing solo).

        A trigger that another replica (or this one before a restart) routed may be
        re-sent here; routing solo, only this process's memory would catch it. The
        newest claims are kept when there are more than this process remembers.
        """
        rows = await con.fetch(
            f"SELECT account_id, entry_id FROM (SELECT account_id, entry_id, claimed_at"
            f"   FROM route_claims WHERE claimed_at > now() - interval '{_RECENT}'"
            f"   ORDER BY claimed_at DESC LIMIT $1) AS recent ORDER BY claimed_at",
            _REMEMBER, timeout=within)
        local = self._local
        for start in range(0, len(rows), _CHUNK):  # oldest first; the loop is not held long
            for account_id, entry_id in rows[start:start + _CHUNK]:
                key = claim_key(account_id, entry_id)
                local[key] = None
                local.move_to_end(key)
            while len(local) > _REMEMBER:
                local.popitem(last=False)
            await asyncio.sleep(0)
        return len(rows)

    def mark_ended(self, key: str) -> None:
        """The greeting leg or the entry (its claim_key) ended: a trigger for it is too late."""
        self._ended[key] = None
        if len(self._ended) > _REMEMBER:
            self._ended.popitem(last=False)

    def ended(self, entry_key: str, call_key: str) -> bool:
        return call_key in self._ended or entry_key in self._ended

    async def claim_shared(self, account_id: int, entry_id: str) -> str | None:
        """None: route it. Otherwise why not: ``claimed_elsewhere`` (another replica
        has it), ``no_lock`` (the database answers, but this replica does not hold
        the replicas' lock, so one that does may be routing alone)."""
        if self.solo and self._leased():  # nobody else can have it: claimed after the route
            self._pending.append((account_id, entry_id, None))
            self._owed += 1
            self._wake.set()
            return None
        answer: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._pending.append((account_id, entry_id, answer))
        self._urgent.set()
        self._wake.set()
        timer = asyncio.get_running_loop().call_later(self._within, give_up, answer)
        try:
            won = await answer  # on a timeout the batch still runs to its end
        except TimeoutError:
            self._late.happened(1, within_ms=self._within * 1000)
            return None
        finally:
            timer.cancel()
        if won is None:  # the statement failed (told by _claim)
            return None
        if not won:
            return "claimed_elsewhere"
        if self.held and self._leased():
            return None
        # Not routed here: give the entry back, so a replica holding the lock may route
        # it if the PBX sends the trigger there.
        await self._unclaim(account_id, entry_id)
        return "no_lock"

    def _leased(self) -> bool:
        return time.monotonic() < self.lease_until

    async def _unclaim(self, account_id: int, entry_id: str) -> None:
        try:
            async with self._pool.acquire() as con:
                await con.execute(
                    "DELETE FROM route_claims WHERE account_id = $1 AND entry_id = $2",
                    account_id, entry_id, timeout=_STATEMENT_WAIT)
        except Exception as exc:  # the claim stays; that entry is then routed by nobody
            logger.warning("claim not given back", extra={"error": repr(exc)})

    async def flush(self, *, within: float) -> None:
        """Wait until every claim owed so far is written (TimeoutError past ``within``).

        Claims queued later do not hold it up: the owed ones go out first, in order."""
        mark = self._owed
        async with asyncio.timeout(within):
            while self._settled < mark:
                self._wake.set()
                await asyncio.sleep(0.002)

    async def _run(self) -> None:
        # One batch at a time: measured, two in flight cost more than they saved.
        loop = asyncio.get_running_loop()
        next_at = 0.0  # solo: loop time before which no statement starts
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                # Claims owed by solo routes go one statement per _SOLO_SPACING; a claim
                # somebody waits for (solo with a lapsed lease, or just after a step-down)
                # cuts the wait short and goes first, ahead of any backlog of owed ones.
                if self.solo and not self._urgent.is_set():
                    delay = next_at - loop.time()
                    if delay > 0:
                        with suppress(TimeoutError):
                            async with asyncio.timeout(delay):
                                await self._urgent.wait()
                if self._urgent.is_set():
                    self._urgent.clear()
                    self._pending.sort(key=_owed)  # stable: owed ones keep their order
                if self.solo:
                    next_at = loop.time() + _SOLO_SPACING
                batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
                if self._pending and not _owed(self._pending[0]):
                    self._urgent.set()  # more waited claims than one batch holds
                await self._claim(batch)

    async def _claim(self, batch: list[_Ask]) -> None:
        try:
            async with self._pool.acquire() as con:
                rows = await con.fetch(_CLAIM, [a[0] for a in batch], [a[1] for a in batch],
                                       timeout=_STATEMENT_WAIT)
        except Exception as exc:  # never let the claim writer die: log, answer, retry
            self._failed.happened(len(batch), error=repr(exc))
            owed = []
            for ask in batch:
                if ask[2] is None:
                    owed.append(ask)
                elif not ask[2].done():
                    ask[2].set_result(None)
            if owed:  # routed already: the claim must still land, for other replicas
                self._pending[:0] = owed
                # Waited claims that come meanwhile time out and route from memory,
                # as they would while the database does not answer.
                await asyncio.sleep(_RETRY)
            return
        self._settled += sum(1 for ask in batch if _owed(ask))
        won = {(r["account_id"], r["entry_id"]) for r in rows}
        for account_id, entry_id, answer in batch:
            if answer is not None and not answer.done():
                answer.set_result((account_id, entry_id) in won)

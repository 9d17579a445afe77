"""Is this the only replica routing? A PostgreSQL advisory lock says.

Every replica holds one key's advisory lock in shared mode for as long as it
serves. A replica that finds itself alone also takes the same key in exclusive
mode and routes *solo*: no other replica can receive the trigger, so its claim
(router.claims) is written just after the route instead of awaited before it,
and the hot path has no database round trip at all.

A replica that starts sends ``NOTIFY router_join`` and asks for the shared lock,
which waits while someone holds the exclusive one. The solo replica hears the
notification (or sees the waiter in ``pg_locks`` within a second), stops
routing solo, writes the claims it still owes, and only then lets go of the
exclusive lock: by the time the newcomer routes anything, every claim of the
solo period is in the table. From then on every replica claims before it routes.
When the others are gone, the survivor takes the exclusive lock again.

The lock lives on a connection of its own, and every statement on it has a
timeout. What this replica believes of the lock is a lease: it lapses
``_LEASE`` seconds after the last statement that succeeded there (and at once
when the connection is seen to close), so a replica whose session the server
ended stops acting on it within that time. A replica that takes the exclusive
lock waits out one lease, claiming before each route, before it routes alone:
by then a replica that held the lock before it has stopped routing alone.

Without the lock (or its lease) a replica routes nothing whose claim the
database accepted (``no_lock``, and the claim is given back): another replica
may be routing alone meanwhile. Only when the database does not answer claims
at all does it route from memory. One window is left: a replica that holds the
shared lock while another's session has just been ended by the server may
claim and route an entry that the other, not yet aware, routes alone; the
other learns of the close within milliseconds (a termination listener) and at
the latest when its lease lapses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

import asyncpg
from prometheus_client import Gauge

from router.claims import Claims
from router.stopping import stop_tasks

logger = logging.getLogger(__name__)

__all__ = ["LOCK_CLASS", "ReplicaLock"]

LOCK_CLASS = 0x524F5554  # "ROUT": pg_advisory_lock(LOCK_CLASS, 0)
_CHANNEL = "router_join"
_CHECK = 1.0  # seconds between looks at the lock (also the connection's liveness ping)
_STAY_SHARED = 2.0  # after stepping down, give the newcomer time to take its lock
_JOIN_WAIT = 10.0  # the most a start waits for a solo replica to step down
_FLUSH_WAIT = 5.0  # the most a step-down waits for the owed claims to be written
_QUERY = 2 * _CHECK  # timeout of each statement on the lock connection
_LEASE = _CHECK + _QUERY + 0.5  # how long a successful statement vouches for the lock
_REMEMBER_WAIT = 10.0  # timeout of loading the recent claims
_RETRY = 0.25  # seconds before joining again after the lock connection failed

_WAITERS = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND NOT granted
      AND classid = $1 AND objid = 0 AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
"""


class ReplicaLock:
    """Keeps ``claims.solo`` true exactly while this replica holds the exclusive lock."""

    __slots__ = ("_claims", "_con", "_dsn", "_exclusive", "_gauge", "_heard", "_shared_since",
                 "_solo_from", "_task")

    def __init__(self, dsn: str, claims: Claims, gauge: Gauge) -> None:
        self._dsn = dsn
        self._claims = claims
        self._gauge = gauge
        self._con: asyncpg.Connection | None = None
        self._heard = asyncio.Event()
        self._shared_since = 0.0
        self._exclusive = False  # holding the exclusive lock (routing alone, or about to)
        self._solo_from = 0.0  # when the exclusive lock may be acted on
        self._task: asyncio.Task[None] | None = None

    @property
    def solo(self) -> bool:
        return self._claims.solo

    async def start(self) -> None:
        """Join the replicas (waiting a bounded time for a solo one to step down)."""
        try:
            async with asyncio.timeout(_JOIN_WAIT):
                await self._join()
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("replica lock not taken yet; claiming before every route",
                           extra={"error": repr(exc)})
            await self._drop_connection()
        self._task = asyncio.create_task(self._run(), name="replica-lock")

    async def close(self) -> None:
        if self._task is not None:
            await stop_tasks(self._task)
        self._set_solo(False)  # also when a step-down was cut short by the cancel
        try:
            await self._claims.flush(within=_FLUSH_WAIT)
        except TimeoutError:
            logger.error("claims of the solo period not all written at shutdown")
        await self._drop_connection()  # closing the session lets go of both locks

    async def _join(self) -> None:
        con = await asyncpg.connect(self._dsn, timeout=_QUERY)
        self._con = con
        con.add_termination_listener(self._on_lost)
        await con.add_listener(_CHANNEL, self._on_join)
        if not await con.fetchval("SELECT pg_try_advisory_lock_shared($1, 0)", LOCK_CLASS,
                                  timeout=_QUERY):
            await con.execute("SELECT pg_notify($1, '')", _CHANNEL, timeout=_QUERY)
            await con.execute("SELECT pg_advisory_lock_shared($1, 0)", LOCK_CLASS)  # waits
        self._claims.held = True
        self._renew()
        self._shared_since = time.monotonic()
        await self._try_solo()

    def _on_join(self, con: object, pid: int, channel: str, payload: object) -> None:
        if self._con is not None and pid != self._con.get_server_pid():
            self._heard.set()

    def _on_lost(self, con: object) -> None:
        """The lock connection closed: whatever it held is gone, act on nothing now."""
        if con is self._con:
            self._lose()

    def _renew(self) -> None:
        self._claims.lease_until = time.monotonic() + _LEASE

    def _lose(self) -> None:
        self._set_solo(False)
        self._claims.held = False
        self._claims.lease_until = 0.0
        self._exclusive = False

    async def _run(self) -> None:
        while True:
            try:
                if self._con is None or self._con.is_closed():
                    async with asyncio.timeout(_JOIN_WAIT):
                        await self._join()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lose()
                logger.warning("replica lock connection lost; routing only what it claims",
                               extra={"error": repr(exc)})
                await self._drop_connection()
            await asyncio.sleep(_RETRY)

    async def _watch(self) -> None:
        assert self._con is not None
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(_CHECK):
                    await self._heard.wait()
            joined = self._heard.is_set()
            self._heard.clear()
            if self._exclusive:
                if joined or await self._con.fetchval(_WAITERS, LOCK_CLASS, timeout=_QUERY):
                    await self._step_down()
                elif not self.solo and time.monotonic() >= self._solo_from:
                    # what the others routed lately may be re-sent here: remember it first
                    await self._claims.remember_recent(self._con, within=_REMEMBER_WAIT)
                    self._set_solo(True)
            elif not joined and time.monotonic() - self._shared_since >= _STAY_SHARED:
                await self._try_solo()
            else:
                if joined:
                    self._shared_since = time.monotonic()
                await self._con.execute("SELECT 1", timeout=_QUERY)  # shows a dead connection
            self._renew()

    async def _try_solo(self) -> None:
        """Take the exclusive lock if nobody else holds the lock; route alone one lease later
        (a replica whose session just ended may still believe it holds the lock until then)."""
        assert self._con is not None
        if await self._con.fetchval("SELECT pg_try_advisory_lock($1, 0)", LOCK_CLASS,
                                    timeout=_QUERY):
            self._exclusive = True
            self._solo_from = time.monotonic() + _LEASE

    async def _step_down(self) -> None:
        assert self._con is not None
        self._set_solo(False)  # triggers from now on claim before they route
        try:
            await self._claims.flush(within=_FLUSH_WAIT)
        except TimeoutError:  # keep the lock: the newcomer routes nothing until it has it
            logger.error("claims of the solo period not all written yet; stepping down later")
            return
        await self._con.execute("SELECT pg_advisory_unlock($1, 0)", LOCK_CLASS, timeout=_QUERY)
        self._exclusive = False
        self._shared_since = time.monotonic()

    def _set_solo(self, solo: bool) -> None:
        if self._claims.solo == solo:
            return
        self._claims.solo = solo
        self._gauge.set(1 if solo else 0)
        logger.info("routing solo" if solo else "routing with claims before each route",
                    extra={"solo": solo})

    async def _drop_connection(self) -> None:
        self._lose()
        con, self._con = self._con, None
        if con is not None and not con.is_closed():
            with suppress(Exception):
                async with asyncio.timeout(2.0):
                    await con.close()
            if not con.is_closed():
                con.terminate()

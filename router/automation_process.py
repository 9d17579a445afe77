"""The call automation in a child process of its own: it never takes routing's CPU.

The serving process routes on one event loop, so on one core. Measured with
``make bench`` at 1,000 calls/s on two cores, it ran at 85 % of a core without
the automation and saturated with it (planning each call from the journal and
the outbox's worker took about a seventh of its time), so routes waited for
planning. In a child at a lower CPU priority (``nice``), planning uses a core
routing does not, and yields to routing when there is none.

``AutomationProcess`` (here, in ``serve``) starts ``python -m
cli.automation_child`` with one end of a socket pair, tells it of every event the
webhooks journaled (``seen``: a list append; a task sends them every few
milliseconds) and shows the child's metrics on ``/metrics``. A child that dies
is started again (backoff up to 30 s); the events seen meanwhile wait here, and
the child's start plans the journal's recent calls again in any case. At
shutdown this end is closed: the child plans what it was told, writes its
notes and exits, and is killed if it has not within ``_STOP_WAIT``.

``run_child`` is the child's side: the index and accounts (kept by its own
``IndexKeeper``), the planner, the outbox's worker and the CRM's health notes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress

from prometheus_client import CollectorRegistry

from automation.engine import CallAutomation, worth_planning
from automation.metrics import AutomationMetrics
from automation.outbox import OutboxWorker
from cache.accounts import AccountRegistry
from cache.index import IndexRegistry
from cache.keeper import IndexKeeper
from lookup.db import close_pool, create_pool
from lookup.priority import BackendPriority
from mango.events import CallEvent
from router.automation_wire import (
    LINE_LIMIT,
    MISSED,
    RelayedMetrics,
    Seen,
    decode_seen,
    encode_metrics,
    encode_seen,
)
from router.health import HealthRecorder
from router.stopping import finish_within, stop_tasks

logger = logging.getLogger(__name__)

__all__ = ["AutomationProcess", "run_child"]

CHILD_MODULE = "cli.automation_child"
NICE = 19  # the child's CPU priority: the lowest; it takes what routing leaves
SESSIONS_NAME = "mango-router automation"  # its database sessions' application_name
_SEND_EVERY = 0.005  # events that come together go in one line
_BUFFER_MOST = 1_000_000  # events kept for a child that is down (then the oldest go)
_RESTART_MOST = 30.0
_HEALTHY_RUN = 60.0  # a child that ran this long starts the backoff afresh
_LINE_MOST = 10_000  # events a line at most: one line never holds the loop long
# more than the child's own shutdown takes when its database answers (its tasks stopped
# within STOP_WAIT, then _DRAIN, _NOTES_WAIT and _POOL_WAIT at most): one still at it is
# killed
_STOP_WAIT = 20.0
_METRICS_EVERY = 1.0
_DRAIN = 5.0
_NOTES_WAIT = 2.0
_POOL_WAIT = 3.0


class AutomationProcess:
    """The webhooks' ``CallFeed`` when the automation runs in a child; ``run()`` is a task
    that keeps the child running, ``stop()`` ends it."""

    __slots__ = ("_dsn", "_indexes", "_log_level", "_metrics", "_pending", "_process",
                 "_rate", "_stopping", "_wake", "_writer")

    def __init__(self, *, dsn: str, rate: float, log_level: str, indexes: IndexRegistry,
                 metrics: RelayedMetrics) -> None:
        self._dsn = dsn
        self._rate = rate
        self._log_level = log_level
        self._indexes = indexes
        self._metrics = metrics
        self._pending: list[Seen] = []
        self._wake = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._stopping = False

    def worth_planning(self, account_id: int, kind: str, call: CallEvent | None) -> bool:
        return worth_planning(self._indexes, account_id, kind, call)

    def seen(self, account_id: int, entry_id: str, *, plan_now: bool, at: float) -> None:
        self._pending.append((account_id, entry_id, plan_now, at))
        if len(self._pending) > 2 * _BUFFER_MOST:  # a child that does not read: bounded
            self._pending = self._take()
        self._wake.set()

    @property
    def pid(self) -> int | None:
        """The running child's process id (tests, logs)."""
        return self._process.pid if self._process is not None else None

    async def run(self) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            try:
                code = await self._run_child()
            except Exception:  # a bug here must not end the automation for good
                logger.exception("the automation process could not be run")
                code = None
            if self._stopping:
                return
            failures = 1 if time.monotonic() - started >= _HEALTHY_RUN else failures + 1
            delay = min(_RESTART_MOST, 0.5 * 2 ** (failures - 1))
            logger.error("the automation process exited; starting it again",
                         extra={"exit_code": code, "restart_in_s": delay})
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Send what is left, close the socket (the child's cue to finish), wait for it."""
        self._stopping = True
        process, writer = self._process, self._writer
        if process is None or process.returncode is not None or writer is None:
            if self._pending:  # the journal has them: the next start plans its recent calls
                logger.error("stopping while the automation process is down: events not "
                             "handed to it", extra={"events": len(self._pending)})
            return
        with suppress(OSError, RuntimeError, TimeoutError):
            for line in _lines(self._take()):
                writer.write(line)
            writer.write_eof()
            async with asyncio.timeout(_STOP_WAIT):
                await writer.drain()
        try:
            async with asyncio.timeout(_STOP_WAIT):
                await process.wait()
        except TimeoutError:
            logger.error("the automation process did not stop in time; killing it",
                         extra={"pid": process.pid})
            with suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def _take(self) -> list[Seen]:
        batch, self._pending = self._pending, []
        if len(batch) > _BUFFER_MOST:
            dropped = batch[:-_BUFFER_MOST]
            logger.warning("automation process behind by too many events: the oldest are "
                           "dropped, and it plans their calls from the journal",
                           extra={"dropped": len(dropped)})
            since = min(at for _account, _entry, _plan, at in dropped)
            batch = [(MISSED, "", False, since), *batch[-_BUFFER_MOST:]]
        return batch

    async def _run_child(self) -> int | None:
        """Start a child and serve it until it exits; its exit code."""
        ours, theirs = socket.socketpair()
        try:
            env = dict(os.environ, DATABASE_URL=self._dsn)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", CHILD_MODULE, "--fd", str(theirs.fileno()),
                "--rate", repr(self._rate), "--log-level", self._log_level,
                pass_fds=(theirs.fileno(),), env=env, stdin=asyncio.subprocess.DEVNULL)
        except BaseException as exc:
            ours.close()
            if not isinstance(exc, OSError):
                raise
            logger.exception("cannot start the automation process")
            return None
        finally:
            theirs.close()
        try:
            reader, writer = await asyncio.open_connection(sock=ours, limit=LINE_LIMIT)
        except BaseException:
            ours.close()
            with suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        self._process, self._writer = process, writer
        logger.info("automation process started", extra={"pid": process.pid})
        tasks = [asyncio.create_task(self._send(writer), name="automation-send"),
                 asyncio.create_task(self._receive(reader), name="automation-metrics")]
        try:
            return await process.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task, outcome in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True),
                                     strict=True):
                if isinstance(outcome, Exception) and not isinstance(outcome, OSError):
                    logger.error("automation process link failed", exc_info=outcome,
                                 extra={"task": task.get_name()})
            writer.close()
            self._metrics.clear()

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        while not self._stopping:
            while not self._pending:  # what a child that died was not sent goes at once
                self._wake.clear()
                await self._wake.wait()
            await asyncio.sleep(_SEND_EVERY)
            if self._stopping:
                return  # stop() sends the rest
            for line in _lines(self._take()):
                writer.write(line)
            await writer.drain()

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            try:
                self._metrics.update(line)
            except ValueError:
                logger.warning("unreadable line from the automation process",
                               extra={"line": line[:200].decode(errors="replace")})


def _lines(batch: list[Seen]) -> Iterator[bytes]:
    for start in range(0, len(batch), _LINE_MOST):
        yield encode_seen(batch[start:start + _LINE_MOST])


async def run_child(sock: socket.socket, *, dsn: str, rate: float,
                    on_stop: Callable[[], object] | None = None) -> None:
    """The child's life: plan and apply until the serving process closes the socket, then
    plan what it was told and go (``on_stop`` is called as its stop begins).

    The closed socket is the only cue. Ctrl-C and a service manager's SIGTERM reach the
    whole process group; the serving process's shutdown, which sends the last events
    first, ends the child, and a serving process that died closes the socket too.
    """
    reader, writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # its sessions at the child's priority too: planning must not take routing's database
    pool = await create_pool(dsn, min_size=1, max_size=6, migrate=False,
                             server_settings={"application_name": SESSIONS_NAME},
                             init=BackendPriority(dsn, nice=NICE))
    indexes, accounts = IndexRegistry(), AccountRegistry()
    registry = CollectorRegistry()
    metrics = AutomationMetrics(registry)
    accounts.on_removed(metrics.forget_account)
    health = HealthRecorder(pool)
    accounts.on_removed(health.forget)
    keeper = IndexKeeper(dsn, pool, indexes, accounts)
    automation = CallAutomation(pool, accounts, indexes=indexes, metrics=metrics)
    worker = OutboxWorker(dsn, pool, accounts, rate=rate, metrics=metrics, health=health.crm,
                          hold=automation.holding_back)
    background = [asyncio.create_task(keeper.run(), name="index-keeper")]
    # read from the start (events are only noted), so a close is seen even while loading
    reading = asyncio.create_task(_read(reader, automation), name="events")
    ready = asyncio.create_task(keeper.ready.wait())
    try:
        # the accounts and their clients, before any planning
        await asyncio.wait({reading, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            background += [asyncio.create_task(automation.run(), name="automation"),
                           asyncio.create_task(worker.run(), name="outbox"),
                           asyncio.create_task(health.run(), name="health-notes"),
                           asyncio.create_task(_report(writer, registry), name="metrics")]
            # each runs until cancelled: one that ends is a bug, and a child that goes on
            # without its planner or its worker would do so silently; the serving
            # process starts a new one (and its start plans the recent calls again)
            await asyncio.wait({reading, *background}, return_when=asyncio.FIRST_COMPLETED)
            for job in background:
                if job.done():
                    raise RuntimeError(f"the automation's {job.get_name()} task ended") \
                        from (None if job.cancelled() else job.exception())
        else:  # closed while loading: what was told is planned if the load ends soon
            with suppress(TimeoutError):
                async with asyncio.timeout(_DRAIN):
                    await ready
    finally:
        if on_stop is not None:
            on_stop()
        try:
            await stop_tasks(ready, reading, *background)
        except Exception:
            logger.exception("automation process: a task failed")
        if keeper.ready.is_set():  # what was told is planned before we go, if we can
            await finish_within(automation.flush(), within=_DRAIN, what="the automation's queue")
        await finish_within(health.flush(), within=_NOTES_WAIT, what="the health notes")
        writer.close()
        await close_pool(pool, within=_POOL_WAIT)


async def _read(reader: asyncio.StreamReader, automation: CallAutomation) -> None:
    while line := await reader.readline():
        try:
            batch = decode_seen(line)
        except ValueError:
            logger.warning("unreadable line from the serving process",
                           extra={"line": line[:200].decode(errors="replace")})
            continue
        for account_id, entry_id, plan_now, at in batch:
            if account_id == MISSED:
                automation.missed(at)
            else:
                automation.seen(account_id, entry_id, plan_now=plan_now, at=at)


async def _report(writer: asyncio.StreamWriter, registry: CollectorRegistry) -> None:
    while True:
        writer.write(encode_metrics(registry))
        await writer.drain()
        await asyncio.sleep(_METRICS_EVERY)

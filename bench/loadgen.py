"""The load generator: its own process, fed steps over a pipe.

A step is open loop: every event has a time fixed before the step starts (one call
every ``1 / rate`` seconds, each call's other events at fixed delays after its
trigger) and is sent at that time, whatever happened to earlier ones (its answer
is counted by a callback on its future: no task per event). Request bytes are
built and signed before the clock starts. The generator reports how late it was
against its own schedule, so a saturated generator shows.

The connections to each server are kept from step to step (``Pools``), as a PBX's
HTTP client keeps its own: a step starts with the connections the warm-up and the
steps before it left open, and opens more only when more requests are in flight at
once than those connections (``connects`` in its report). A fresh pool per step made
every step pay for growing it again, and a service whose answers wait for a commit
(the product's journal) paid most, in its measured tail: a burst of new
connections cost its triggers up to 115 ms before the handler saw them.
Connections idle for 30 s are closed before a step starts, never during one (a step
and its drain stay well under the 45 s more that aiohttp's 75 s keep-alive timeout
leaves). A step that saturated the service (it opened more than
``_KEEP_AFTER_OPENING``) or ended with requests unanswered closes its pool at its
end, as every step did before: kept, its thousand connections closed later cost a
measured step 60–700 ms, and unanswered requests would be answered in the next.

The sidecar test is closed loop instead: ``concurrency`` workers ask ``GET /route``
back to back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

import orjson

from bench.procs import new_event_loop
from bench.rawhttp import HttpError, RawPool, build_get, build_post_form
from bench.schedule import EventKind, build_schedule
from bench.stats import percentile
from mango.signing import sign

__all__ = [
    "Pools",
    "SidecarReport",
    "SidecarSpec",
    "StepReport",
    "StepSpec",
    "loadgen_main",
    "run_sidecar",
    "run_step",
]

logger = logging.getLogger(__name__)

_START_DELAY_S = 0.2
# A step that had to open more connections than this saturated the service (healthy
# steps at 1,000 calls/s open 0-125): its pool is closed at its end, not kept, so the
# next step does not start with a thousand idle connections to close.
_KEEP_AFTER_OPENING = 250
_DRAIN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSpec:
    host: str
    port: int
    api_key: str
    salt: str
    rate: float
    seconds: float
    connected_s: float
    end_s: float
    numbers: list[str]  # one caller per call; len == calls in the step
    line_number: str
    call_prefix: str  # call_id = prefix + index; unique in the run
    conn_limit: int = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class StepReport:
    send_times: list[float]  # monotonic time each trigger went out, NaN if it did not
    triggers_failed: int  # triggers sent but not answered 200
    requests: int
    errors: int  # transport failures and answers other than 200
    statuses: dict[int, int]
    lag_p50_ms: float  # how late triggers went out against the schedule
    lag_p99_ms: float
    lag_max_ms: float
    achieved_rate: float  # triggers per second actually sent
    first_error: str | None
    connects: int = 0  # connections the step had to open


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarSpec:
    host: str
    port: int
    numbers: list[str]
    concurrency: int
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SidecarReport:
    requests: int
    errors: int
    statuses: dict[int, int]
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    first_error: str | None


def _payloads(spec: StepSpec, i: int, number: str, now: int) -> dict[EventKind, tuple[str, str]]:
    entry = f"{spec.call_prefix}e{i}"
    call = f"{spec.call_prefix}{i}"
    line = spec.line_number
    leg: dict[str, Any] = {
        "entry_id": entry,
        "call_id": call,
        "timestamp": now,
        "seq": 1,
        "call_state": "Appeared",
        "location": "ivr",
        "from": {"number": number},
        "to": {"number": line, "line_number": line},
        "disconnect_reason": 0,
    }
    out = {EventKind.TRIGGER: ("events/call", orjson.dumps(leg).decode())}
    leg["seq"], leg["call_state"] = 2, "Connected"
    out[EventKind.CONNECTED] = ("events/call", orjson.dumps(leg).decode())
    leg["seq"], leg["call_state"], leg["disconnect_reason"] = 3, "Disconnected", 1110
    out[EventKind.DISCONNECTED] = ("events/call", orjson.dumps(leg).decode())
    summary = {
        "entry_id": entry,
        "call_direction": 1,
        "from": {"number": number},
        "to": {"number": line},
        "line_number": line,
        "create_time": now,
        "forward_time": 0,
        "talk_time": 0,
        "end_time": now + 1,
        "entry_result": 0,
        "disconnect_reason": 1110,
    }
    out[EventKind.SUMMARY] = ("events/summary", orjson.dumps(summary).decode())
    return out


def _build_requests(spec: StepSpec) -> dict[tuple[EventKind, int], bytes]:
    now = int(time.time())
    built: dict[tuple[EventKind, int], bytes] = {}
    for i, number in enumerate(spec.numbers):
        for kind, (path, raw) in _payloads(spec, i, number, now).items():
            fields = {
                "vpbx_api_key": spec.api_key,
                "sign": sign(spec.api_key, raw, spec.salt),
                "json": raw,
            }
            built[kind, i] = build_post_form(spec.host, spec.port, f"/mango/{path}", fields)
    return built


class Pools:
    """The generator's connection pool to each server, kept across steps."""

    __slots__ = ("_pools",)

    def __init__(self) -> None:
        self._pools: dict[tuple[str, int, int], RawPool] = {}

    def get(self, spec: StepSpec) -> RawPool:
        key = _key(spec)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = RawPool(spec.host, spec.port, limit=spec.conn_limit)
        return pool

    async def drop(self, spec: StepSpec) -> None:
        pool = self._pools.pop(_key(spec), None)
        if pool is not None:
            await pool.close()

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()


def _key(spec: StepSpec) -> tuple[str, int, int]:
    return spec.host, spec.port, spec.conn_limit


async def run_step(spec: StepSpec, pools: Pools | None = None) -> StepReport:
    """One step; with ``pools``, over the connections earlier steps left open (without,
    over connections of its own, closed at its end)."""
    own = pools is None
    if pools is None:
        pools = Pools()
    schedule = build_schedule(
        spec.rate, spec.seconds, connected_s=spec.connected_s, end_s=spec.end_s
    )
    n = len(spec.numbers)
    if sum(1 for _, k, _ in schedule if k is EventKind.TRIGGER) != n:
        raise ValueError("numbers do not match the rate and duration")
    requests = _build_requests(spec)
    send_times = [math.nan] * n
    lags: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    triggers_failed = 0
    first_error: str | None = None
    pool = pools.get(spec)
    pool.close_stale()  # before the clock starts (_START_DELAY_S): not in the step
    opened_before = pool.opened
    outstanding: set[asyncio.Future[tuple[int, bytes]]] = set()

    def answered(kind: EventKind, fut: asyncio.Future[tuple[int, bytes]]) -> None:
        nonlocal errors, first_error, triggers_failed
        outstanding.discard(fut)
        trigger = kind is EventKind.TRIGGER
        if fut.cancelled():  # unanswered at the end of the step
            triggers_failed += trigger
            return
        exc = fut.exception()
        if exc is not None:
            errors += 1
            triggers_failed += trigger
            first_error = first_error or f"{kind.name}: {exc}"
            return
        status = fut.result()[0]
        statuses[status] += 1
        if status != 200:
            errors += 1
            triggers_failed += trigger
            first_error = first_error or f"{kind.name}: HTTP {status}"

    t0 = time.monotonic() + _START_DELAY_S
    clean = False  # every request answered: the pool may be kept
    try:
        for offset, kind, i in schedule:
            at = t0 + offset
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.monotonic()
            if kind is EventKind.TRIGGER:
                lags.append(t - at)
                send_times[i] = t  # the latency clock starts when the trigger is written
            # no task per event: the answer is counted by a callback
            fut = pool.request(requests[kind, i])
            outstanding.add(fut)
            fut.add_done_callback(partial(answered, kind))
        pending: set[asyncio.Future[tuple[int, bytes]]] = set()
        if outstanding:
            _, pending = await asyncio.wait(set(outstanding), timeout=_DRAIN_TIMEOUT_S)
            for fut in pending:
                fut.cancel()
            errors += len(pending)
            if pending:
                first_error = first_error or f"{len(pending)} requests unanswered"
            await asyncio.sleep(0)  # the cancelled ones' callbacks
        clean = not pending
    finally:
        # not kept when the service fell behind (see the module's docstring)
        if own or not clean or pool.opened - opened_before > _KEEP_AFTER_OPENING:
            await pools.drop(spec)
    sent = sorted(t for t in send_times if not math.isnan(t))
    lags.sort()
    span = sent[-1] - sent[0] if len(sent) > 1 else 0.0
    achieved = (len(sent) - 1) / span if span > 0 else 0.0
    return StepReport(
        send_times=send_times,
        triggers_failed=triggers_failed,
        requests=len(schedule),
        errors=errors,
        statuses=dict(statuses),
        lag_p50_ms=percentile(lags, 50) * 1000 if lags else math.nan,
        lag_p99_ms=percentile(lags, 99) * 1000 if lags else math.nan,
        lag_max_ms=lags[-1] * 1000 if lags else math.nan,
        achieved_rate=achieved,
        first_error=first_error,
        connects=pool.opened - opened_before,
    )


async def run_sidecar(spec: SidecarSpec) -> SidecarReport:
    reqs = [build_get(spec.host, spec.port, f"/route?number={quote(n)}") for n in spec.numbers]
    if not reqs:
        raise ValueError("no numbers for the sidecar test")
    pool = RawPool(spec.host, spec.port, limit=spec.concurrency)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    first_error: str | None = None
    start = time.perf_counter()
    end = start + spec.seconds

    async def worker(w: int) -> None:
        nonlocal errors, first_error
        k = w
        while True:
            t = time.perf_counter()
            if t >= end:
                return
            try:
                status, _ = await pool.request(reqs[k % len(reqs)])
            except (HttpError, OSError) as exc:
                errors += 1
                first_error = first_error or str(exc)
                await asyncio.sleep(0.01)
                continue
            finally:
                k += spec.concurrency
            latencies.append(time.perf_counter() - t)
            statuses[status] += 1
            if status not in (200, 404):
                errors += 1
                first_error = first_error or f"HTTP {status}"

    try:
        await asyncio.gather(*(worker(w) for w in range(spec.concurrency)))
    finally:
        await pool.close()
    elapsed = time.perf_counter() - start
    latencies.sort()
    ok = len(latencies)
    return SidecarReport(
        requests=ok,
        errors=errors,
        statuses=dict(statuses),
        seconds=elapsed,
        rps=ok / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 50) * 1000 if ok else math.nan,
        p99_ms=percentile(latencies, 99) * 1000 if ok else math.nan,
        first_error=first_error,
    )


def loadgen_main(conn: Connection) -> None:
    """The generator process: answer ("step", StepSpec) and ("sidecar", SidecarSpec)
    with a report (or ("error", text)) until ("stop",)."""
    logging.basicConfig(level=logging.WARNING)
    pools = Pools()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        try:
            _serve(conn, runner, pools)
        finally:
            runner.run(pools.close())


def _serve(conn: Connection, runner: asyncio.Runner, pools: Pools) -> None:
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        kind = msg[0]
        if kind == "stop":
            return
        try:
            if kind == "step":
                conn.send(("ok", runner.run(run_step(msg[1], pools))))
            elif kind == "sidecar":
                conn.send(("ok", runner.run(run_sidecar(msg[1]))))
            else:
                conn.send(("error", f"unknown command {kind!r}"))
        except Exception as exc:
            logger.exception("load generator failed")
            conn.send(("error", f"{type(exc).__name__}: {exc}"))

"""One mode under load: the fixed rates, then the step-up search for its highest
sustainable rate. The service is already running; this drives the generator and
the PBX emulator and judges each step."""

from __future__ import annotations

import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.config import BenchConfig
from bench.data import DatasetInfo, plan_calls
from bench.loadgen import StepReport, StepSpec
from bench.pbxproc import PbxProcess
from bench.procs import ChildProcess
from bench.schedule import StepUpSearch, call_count
from bench.stats import RouteSeen, StepOutcome, evaluate_step, summarize, sustained

__all__ = ["LoadTarget", "ModeResult", "Paired", "StepResult", "pool_steps", "run_mode"]

logger = logging.getLogger(__name__)

LINE_NUMBER = "74950000000"
_SETTLE_MAX_S = 3.0
_SETTLE_QUIET_S = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadTarget:
    mode: str
    host: str
    port: int
    api_key: str
    salt: str
    fixed_route: str | None  # the floor routes every trigger to one extension


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    rate: int
    seconds: float
    search: bool
    outcome: StepOutcome
    lag_p99_ms: float
    lag_max_ms: float
    achieved_rate: float
    errors: int
    triggers_failed: int  # triggers not answered 200 (sent all the same)
    first_error: str | None
    stray_routes: int  # routes for calls of other steps (late ones)
    passed: bool
    connects: int = 0  # connections the generator had to open during the step


@dataclass(frozen=True, slots=True, kw_only=True)
class Paired:
    """A mode's steps at one rate, each right after a floor step at that rate: the two
    share whatever the machine was doing that minute (it is shared and noisy)."""

    rate: int
    rounds: tuple[tuple[StepResult, StepResult], ...]  # (floor, mode)

    def floor(self) -> StepResult:
        return pool_steps([f for f, _ in self.rounds])

    def mode(self) -> StepResult:
        return pool_steps([m for _, m in self.rounds])


@dataclass(slots=True, kw_only=True)
class ModeResult:
    mode: str
    steps: list[StepResult] = field(default_factory=list)
    max_rate: int | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    automation: dict[str, Any] | None = None  # auto mode: what the call automation did
    paired: Paired | None = None

    def fixed(self) -> list[StepResult]:
        return [s for s in self.steps if not s.search]


def pool_steps(steps: Sequence[StepResult]) -> StepResult:
    """Steps at one rate as one: their calls' latencies pooled, the counts added, the
    achieved rate weighted by time; it passes when each passed. The generator's lag is
    the worst step's (its p99s cannot be pooled)."""
    if not steps:
        raise ValueError("pool of no steps")
    outcomes = [s.outcome for s in steps]
    latencies = [ms for o in outcomes for ms in o.latencies_ms]
    seconds = sum(s.seconds for s in steps)
    return StepResult(
        rate=steps[0].rate,
        seconds=seconds,
        search=steps[0].search,
        outcome=StepOutcome(
            sent=sum(o.sent for o in outcomes),
            expected=sum(o.expected for o in outcomes),
            routed=sum(o.routed for o in outcomes),
            lost=sum(o.lost for o in outcomes),
            wrong=sum(o.wrong for o in outcomes),
            duplicates=sum(o.duplicates for o in outcomes),
            latencies_ms=latencies,
            latency=summarize(latencies),
        ),
        lag_p99_ms=max(s.lag_p99_ms for s in steps),
        lag_max_ms=max(s.lag_max_ms for s in steps),
        achieved_rate=sum(s.achieved_rate * s.seconds for s in steps) / seconds,
        errors=sum(s.errors for s in steps),
        triggers_failed=sum(s.triggers_failed for s in steps),
        first_error=next((s.first_error for s in steps if s.first_error), None),
        stray_routes=sum(s.stray_routes for s in steps),
        passed=all(s.passed for s in steps),
        connects=sum(s.connects for s in steps),
    )


@dataclass(slots=True, kw_only=True)
class _Counter:
    step: int = 0


_STEPS = _Counter()


def run_step(
    cfg: BenchConfig,
    target: LoadTarget,
    info: DatasetInfo,
    loadgen: ChildProcess,
    pbx: PbxProcess,
    *,
    rate: int,
    seconds: float,
    search: bool,
    run_token: str,
    warmup: bool = False,
    paired_with: str | None = None,
) -> StepResult:
    _STEPS.step += 1
    waited = _quiesce(target.host, target.port)
    if waited > 1.0:
        logger.info("%s: waited %.1f s for the service to go quiet", target.mode, waited)
    prefix = f"{run_token}-{target.mode}-{_STEPS.step}-"
    n = call_count(rate, seconds)
    plan = plan_calls(
        info, n, seed=cfg.seed * 1000 + _STEPS.step, known_share=cfg.known_share,
        fixed_route=target.fixed_route,
    )
    stray, _ = pbx.drain()
    spec = StepSpec(
        host=target.host,
        port=target.port,
        api_key=target.api_key,
        salt=target.salt,
        rate=rate,
        seconds=seconds,
        connected_s=cfg.followup_connected_s,
        end_s=cfg.followup_end_s,
        numbers=plan.numbers,
        line_number=LINE_NUMBER,
        call_prefix=prefix,
    )
    report: StepReport = loadgen.call(("step", spec), timeout=seconds + 120)
    _settle(pbx, sum(1 for e in plan.expected if e is not None))
    routes, _bad = pbx.drain()
    seen: list[RouteSeen] = []
    strays = len(stray)
    for call_id, to_number, received_at in routes:
        if not call_id.startswith(prefix) or not call_id[len(prefix):].isdigit():
            strays += 1
            continue
        seen.append(
            RouteSeen(call=int(call_id[len(prefix):]), to_number=to_number, received_at=received_at)
        )
    outcome = evaluate_step(plan.expected, report.send_times, seen)
    passed = sustained(
        outcome,
        rate=rate,
        achieved_rate=report.achieved_rate,
        errors=report.errors,
        p99_limit_ms=cfg.p99_limit_ms,
    )
    result = StepResult(
        rate=rate,
        seconds=seconds,
        search=search,
        outcome=outcome,
        lag_p99_ms=report.lag_p99_ms,
        lag_max_ms=report.lag_max_ms,
        achieved_rate=report.achieved_rate,
        errors=report.errors,
        triggers_failed=report.triggers_failed,
        first_error=report.first_error,
        stray_routes=strays,
        passed=passed,
        connects=report.connects,
    )
    lat = outcome.latency
    logger.info(
        "%-5s %5d/s%s: sent %d, p50 %.2f p99 %.2f max %.1f ms, lost %d wrong %d, "
        "errors %d, lag p99 %.1f ms, achieved %.0f/s, %d new connections -> %s",
        target.mode, rate, " (warm-up)" if warmup else " (search)" if search else
        f" (paired with {paired_with})" if paired_with else "",
        outcome.sent, lat.p50, lat.p99,
        lat.max, outcome.lost, outcome.wrong, report.errors, report.lag_p99_ms,
        report.achieved_rate, report.connects, "pass" if passed else "FAIL",
    )
    if report.first_error:
        logger.info("      first error: %s", report.first_error)
    return result


def _quiesce(host: str, port: int, *, max_s: float = 5.0) -> float:
    """Wait until the service answers ``/healthz`` promptly three times in a row (an
    overloaded step leaves a backlog that must not be charged to the next one)."""
    start = time.monotonic()
    fast = 0
    while fast < 3 and time.monotonic() - start < max_s:
        t = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=2) as resp:
                resp.read()
        except (urllib.error.URLError, OSError):
            fast = 0
            time.sleep(0.1)
            continue
        fast = fast + 1 if time.monotonic() - t < 0.005 else 0
        time.sleep(0.05)
    return time.monotonic() - start


def _settle(pbx: PbxProcess, expected: int) -> None:
    """Wait until routes stop arriving (they come within the route deadline)."""
    deadline = time.monotonic() + _SETTLE_MAX_S
    last = pbx.count()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now_count = pbx.count()
        if now_count != last:
            last, quiet_since = now_count, time.monotonic()
        elif now_count >= expected or time.monotonic() - quiet_since >= _SETTLE_QUIET_S:
            return


def run_mode(
    cfg: BenchConfig,
    target: LoadTarget,
    info: DatasetInfo,
    loadgen: ChildProcess,
    pbx: PbxProcess,
    *,
    run_token: str,
    deadline: float,
    floor: LoadTarget | None = None,
) -> ModeResult:
    """The fixed rates, then the search, as far as ``deadline`` (monotonic) allows.

    With ``floor`` (the floor's service, still running), the rate ``cfg.pair_rate`` is
    run as ``cfg.pair_rounds`` rounds of a floor step then one of this mode's; its
    figures at that rate are the rounds' pooled.
    """
    result = ModeResult(mode=target.mode)
    overhead = cfg.followup_end_s + 1.5
    if cfg.warmup_seconds > 0 and target.mode != "crm":
        # Not counted: the first calls after a start pay for cold connections, page
        # faults in the index and the database's caches, and a short step's p99 is
        # made of a handful of calls. (The crm mode waits 150 ms for the CRM anyway.)
        # At P1's rate, which every mode should hold: at the highest (2,000/s, at or
        # past what the services hold on the 2-core VM) the product's database was
        # still catching up during the rounds after it, which then opened hundreds of
        # connections each.
        rate = cfg.pair_rate if cfg.pair_rate in cfg.rates else max(cfg.rates)
        run_step(cfg, target, info, loadgen, pbx, rate=rate, seconds=cfg.warmup_seconds,
                 search=False, run_token=run_token, warmup=True)
        result.notes.append(f"{target.mode}: warmed up for {cfg.warmup_seconds:g} s at "
                            f"{rate}/s first (not counted)")

    def step(rate: int, seconds: float, search: bool) -> StepResult:
        s = run_step(
            cfg, target, info, loadgen, pbx, rate=rate, seconds=seconds, search=search,
            run_token=run_token,
        )
        result.steps.append(s)
        return s

    pair_floor = floor if cfg.pair_rounds > 0 else None
    for rate in cfg.rates:
        if pair_floor is not None and rate == cfg.pair_rate:
            result.paired = _paired(cfg, target, pair_floor, info, loadgen, pbx,
                                    run_token=run_token, deadline=deadline, overhead=overhead,
                                    notes=result.notes)
            if result.paired is not None:
                result.steps.append(result.paired.mode())
                continue
            result.notes.append(f"{target.mode}: {rate}/s not paired with the floor, out of "
                                "time budget")
        if time.monotonic() + cfg.step_seconds + overhead > deadline:
            result.notes.append(f"{target.mode}: {rate}/s skipped, out of time budget")
            continue
        step(rate, cfg.step_seconds, False)
    search = StepUpSearch.from_fixed(
        [(s.rate, s.passed) for s in result.fixed()],
        factor=cfg.search_factor,
        max_steps=cfg.search_max_steps,
        cap=cfg.search_cap,
    )
    while (next_rate := search.next_rate()) is not None:
        if time.monotonic() + cfg.search_seconds + overhead > deadline:
            result.notes.append(f"{target.mode}: step-up search cut short by the time budget")
            break
        s = step(next_rate, cfg.search_seconds, True)
        search.record(next_rate, s.passed)
    result.max_rate = search.best
    if search.best is None:
        lowest = min(cfg.rates)
        result.notes.append(
            f"{target.mode}: max_rate null: no rate sustained p99 <= {cfg.p99_limit_ms:g} ms "
            f"with nothing lost (lowest tried {lowest}/s)"
        )
    elif search.failed is None and search.best >= cfg.search_cap:
        result.notes.append(f"{target.mode}: max_rate reached the search cap {cfg.search_cap}/s")
    elif search.failed is None:
        result.notes.append(
            f"{target.mode}: max_rate {search.best}/s is a lower bound (no failing rate found)"
        )
    return result


def _paired(
    cfg: BenchConfig,
    target: LoadTarget,
    floor: LoadTarget,
    info: DatasetInfo,
    loadgen: ChildProcess,
    pbx: PbxProcess,
    *,
    run_token: str,
    deadline: float,
    overhead: float,
    notes: list[str],
) -> Paired | None:
    """The rounds at ``cfg.pair_rate``, as many as the time budget has room for (at
    least one, else None). The floor is warmed up first at that rate, then the mode: the
    floor may have been idle for minutes, and a cold first step would flatter the mode
    against it; the mode's own warm-up was at the top rate, and a service it saturated
    has its generator's connections closed after it (``bench.loadgen``)."""
    need = 2 * (cfg.pair_seconds + overhead)
    if time.monotonic() + need + 2 * (cfg.warmup_seconds + overhead) > deadline:
        return None
    if cfg.warmup_seconds > 0:
        for each in (floor, target):
            run_step(cfg, each, info, loadgen, pbx, rate=cfg.pair_rate,
                     seconds=cfg.warmup_seconds, search=False, run_token=run_token,
                     warmup=True)
    rounds: list[tuple[StepResult, StepResult]] = []
    for _ in range(cfg.pair_rounds):
        if time.monotonic() + need > deadline:
            break
        floor_step = run_step(cfg, floor, info, loadgen, pbx, rate=cfg.pair_rate,
                              seconds=cfg.pair_seconds, search=False, run_token=run_token,
                              paired_with=target.mode)
        mode_step = run_step(cfg, target, info, loadgen, pbx, rate=cfg.pair_rate,
                             seconds=cfg.pair_seconds, search=False, run_token=run_token,
                             paired_with="floor")
        rounds.append((floor_step, mode_step))
    if 0 < len(rounds) < cfg.pair_rounds:
        notes.append(f"{target.mode}: {len(rounds)} of {cfg.pair_rounds} rounds paired with "
                     "the floor (time budget)")
    return Paired(rate=cfg.pair_rate, rounds=tuple(rounds)) if rounds else None


def fmt_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"

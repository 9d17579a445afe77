"""``results.json`` (its shape is relied on by outside tools), the printed table, and
the targets of the issue checked against the figures of the same run."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.config import BenchConfig
from bench.cpus import allowed_cpus
from bench.modes import ModeResult, Paired, StepResult

__all__ = [
    "Target",
    "build_results",
    "evaluate_targets",
    "format_report",
    "machine_description",
    "step_json",
]


def _num(value: float | None, digits: int = 3) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def machine_description() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(allowed_cpus()) or os.cpu_count()
    parts = [platform.node(), platform.machine(), f"{cores} cores"]
    if model:
        parts.append(model)
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def step_json(step: StepResult) -> dict[str, Any]:
    o = step.outcome
    return {
        "sent": o.sent,
        "accepted": o.sent - step.triggers_failed,
        "p50_ms": _num(o.latency.p50),
        "p99_ms": _num(o.latency.p99),
        "max_ms": _num(o.latency.max),
        "lost": o.lost,
        "wrong": o.wrong,
        "expected": o.expected,
        "routed": o.routed,
        "duplicates": o.duplicates,
        "errors": step.errors,
        "seconds": step.seconds,
        "achieved_rate": _num(step.achieved_rate, 1),
        "lag_p99_ms": _num(step.lag_p99_ms),
        "lag_max_ms": _num(step.lag_max_ms),
        "connects": step.connects,
        "passed": step.passed,
    }


def _mode_json(result: ModeResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rates": {str(s.rate): step_json(s) for s in result.fixed()},
        "max_rate": result.max_rate,
        "search": [{"rate": s.rate, **step_json(s)} for s in result.steps if s.search],
    }
    if result.error:
        out["error"] = result.error
    if result.automation is not None:
        out["automation"] = result.automation
    if result.paired is not None:
        out["paired"] = _paired_json(result.paired)
    return out


def _paired_json(paired: Paired) -> dict[str, Any]:
    """The rounds at P1's rate: the floor's steps pooled (the mode's are its figures at
    that rate), and each round's two p99s."""
    return {
        "rate": paired.rate,
        "rounds": len(paired.rounds),
        "seconds": paired.rounds[0][1].seconds,
        "floor": step_json(paired.floor()),
        "p99_ms_by_round": [{"floor": _num(f.outcome.latency.p99),
                             "mode": _num(m.outcome.latency.p99)} for f, m in paired.rounds],
    }


def build_results(
    cfg: BenchConfig,
    *,
    machine: str,
    modes: Sequence[ModeResult],
    index_build: Mapping[str, Any],
    freshness: Mapping[str, Any],
    sidecar: Mapping[str, Any],
    data: Mapping[str, Any],
    notes: Sequence[str],
    elapsed_s: float,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine,
        "quick": cfg.quick,
        "modes": {m.mode: _mode_json(m) for m in modes},
        "index_build": dict(index_build),
        "freshness": dict(freshness),
        "sidecar": dict(sidecar),
        "data": dict(data),
        "config": {
            "rates": list(cfg.rates),
            "step_seconds": cfg.step_seconds,
            "search_seconds": cfg.search_seconds,
            "pair_rate": cfg.pair_rate,
            "pair_rounds": cfg.pair_rounds,
            "pair_seconds": cfg.pair_seconds,
            "p99_limit_ms": cfg.p99_limit_ms,
            "route_deadline_ms": cfg.route_deadline_ms,
            "known_share": cfg.known_share,
            "crm_latency_ms": cfg.crm_latency_ms,
            "seed": cfg.seed,
        },
        "notes": [*notes, *(n for m in modes for n in m.notes)],
        "elapsed_s": round(elapsed_s, 1),
    }
    results["targets"] = [t.as_json() for t in evaluate_targets(results)]
    return results


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    name: str
    passed: bool | None  # None: a figure it needs is missing
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "FAIL")


def _p99(results: Mapping[str, Any], mode: str, rate: int) -> float | None:
    try:
        value = results["modes"][mode]["rates"][str(rate)]["p99_ms"]
    except (KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _floor_p99(results: Mapping[str, Any], mode: str, rate: int) -> tuple[float | None, str]:
    """The floor's p99 that ``mode``'s at ``rate`` is judged against: that of the floor
    steps paired with it when there are, else the floor mode's own step."""
    paired = results.get("modes", {}).get(mode, {}).get("paired")
    if isinstance(paired, Mapping) and paired.get("rate") == rate:
        value = paired.get("floor", {}).get("p99_ms")
        if isinstance(value, int | float):
            return float(value), f"paired floor steps ({_rounds(paired.get('rounds'))})"
    return _p99(results, "floor", rate), "the floor mode's step"


def _max_rate(results: Mapping[str, Any], mode: str) -> float | None:
    try:
        value = results["modes"][mode]["max_rate"]
    except (KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _ratio_target(name: str, a: float | None, b: float | None, what: str, *,
                  at_least: float) -> Target:
    """Pass when a / b >= at_least."""
    if a is None or b is None or b <= 0:
        return Target(name=name, passed=None, detail=f"{what}: missing figure")
    ratio = a / b
    return Target(name=name, passed=ratio >= at_least,
                  detail=f"{what}: {a:.3g} / {b:.3g} = {ratio:.2f} (need >= {at_least:.3g})")


def evaluate_targets(results: Mapping[str, Any]) -> list[Target]:
    out: list[Target] = []
    idx_1k = _p99(results, "index", 1000)
    floor_1k, against = _floor_p99(results, "index", 1000)
    out.append(_ratio_target(
        "index p99 at 1000/s <= 1.5 x floor p99", floor_1k, idx_1k,
        f"floor p99 ({against}) / index p99 (ms)", at_least=1 / 1.5))
    out.append(Target(
        name="index p99 at 1000/s <= 5 ms",
        passed=None if idx_1k is None else idx_1k <= 5.0,
        detail="missing figure" if idx_1k is None else f"{idx_1k:.2f} ms"))
    idx_max, floor_max, sql_max = (
        _max_rate(results, m) for m in ("index", "floor", "sql"))
    out.append(_ratio_target(
        "index max rate >= 0.8 x floor's", idx_max, floor_max,
        "index / floor max rate", at_least=0.8))
    if "auto" in results.get("modes", {}):  # call automation on: routing must not suffer
        auto_floor_1k, auto_against = _floor_p99(results, "auto", 1000)
        out.append(_ratio_target(
            "P1 auto p99 at 1000/s <= 1.5 x floor p99", auto_floor_1k,
            _p99(results, "auto", 1000), f"floor p99 ({auto_against}) / auto p99 (ms)",
            at_least=1 / 1.5))
        out.append(_ratio_target(
            "P2 auto max rate >= 0.8 x floor's", _max_rate(results, "auto"), floor_max,
            "auto / floor max rate", at_least=0.8))
        # The engine's own cost: the same serving process with and without it, in one run.
        # P1 also weighs the serving path (the journal, the decision record) against the
        # floor, which the index mode shares.
        out.append(_ratio_target(
            "auto p99 at 1000/s <= 1.5 x index p99 (the engine's own cost)", idx_1k,
            _p99(results, "auto", 1000), "index p99 / auto p99 (ms)", at_least=1 / 1.5))
    out.append(_ratio_target(
        "index p99 at 2000/s >= 3x lower than sql's", _p99(results, "sql", 2000),
        _p99(results, "index", 2000), "sql p99 / index p99 (ms)", at_least=3.0))
    if sql_max is None and idx_max is not None and "sql" in results.get("modes", {}):
        out.append(Target(name="index max rate >= 1.5 x sql's", passed=True,
                          detail=f"index {idx_max:g}/s; sql sustained no tested rate"))
    else:
        out.append(_ratio_target("index max rate >= 1.5 x sql's", idx_max, sql_max,
                                 "index / sql max rate", at_least=1.5))
    rates = sorted(
        int(r) for r in results.get("modes", {}).get("crm", {}).get("rates", {})
        if r in results.get("modes", {}).get("index", {}).get("rates", {})
    )
    if not rates:
        out.append(Target(name="index p99 >= 30x lower than crm at every rate", passed=None,
                          detail="missing figures"))
    else:
        parts, ok = [], True
        for r in rates:
            c, i = _p99(results, "crm", r), _p99(results, "index", r)
            if c is None or i is None or i <= 0:
                parts.append(f"{r}/s n/a")
                ok = False
                continue
            parts.append(f"{r}/s {c / i:.0f}x")
            ok = ok and c / i >= 30
        out.append(Target(name="index p99 >= 30x lower than crm at every rate", passed=ok,
                          detail=", ".join(parts)))
    fresh = results.get("freshness", {}).get("p99_ms")
    out.append(Target(
        name="freshness p99 <= 100 ms",
        passed=None if not isinstance(fresh, int | float) else fresh <= 100,
        detail="missing figure" if not isinstance(fresh, int | float) else f"{fresh:.1f} ms"))
    rps = results.get("sidecar", {}).get("rps")
    out.append(Target(
        name="sidecar >= 5000 req/s (one process)",
        passed=None if not isinstance(rps, int | float) else rps >= 5000,
        detail="missing figure" if not isinstance(rps, int | float) else f"{rps:.0f} req/s"))
    index_rates = results.get("modes", {}).get("index", {}).get("rates", {})
    if index_rates:
        bad = [f"{r}/s lost {v['lost']} wrong {v['wrong']}" for r, v in index_rates.items()
               if v.get("lost") or v.get("wrong")]
        out.append(Target(name="index: lost = wrong = 0 at every fixed rate", passed=not bad,
                          detail="; ".join(bad) or "none lost, none wrong"))
    else:
        out.append(Target(name="index: lost = wrong = 0 at every fixed rate", passed=None,
                          detail="missing figures"))
    return out


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _automation_line(a: Mapping[str, Any]) -> str:
    planned = ", ".join(f"{k} {v}" for k, v in sorted(a.get("planned", {}).items()))
    applied = ", ".join(f"{k} {v}" for k, v in sorted(a.get("crm_applied", {}).items()))
    return (f"CRM actions: {a.get('planned_total')} planned ({planned or 'none'}), "
            f"{a.get('done_total')} done, {a.get('pending_at_end')} pending at the end; "
            f"the CRM (cap {a.get('crm_rate')}/s) applied {applied or 'nothing'}")


def _rounds(n: object) -> str:
    return f"{n} round" if n == 1 else f"{n} rounds"


def _paired_line(p: Mapping[str, Any]) -> str:
    floor = p.get("floor", {})
    rounds = ", ".join(f"{_fmt(r.get('floor'))} | {_fmt(r.get('mode'))}"
                       for r in p.get("p99_ms_by_round", []))
    return (f"at {p.get('rate')}/s: {_rounds(p.get('rounds'))} of a floor step then this "
            f"mode's, {_fmt(p.get('seconds'), '.0f')} s each; the floor's pooled p50 "
            f"{_fmt(floor.get('p50_ms'))} p99 {_fmt(floor.get('p99_ms'))} ms; p99 by round "
            f"(floor | mode): {rounds}")


def format_report(results: Mapping[str, Any]) -> str:
    lines: list[str] = []
    data = results.get("data", {})
    lines.append(f"machine: {results.get('machine')}  quick: {results.get('quick')}  "
                 f"run: {results.get('elapsed_s')} s")
    lines.append(
        f"load data: {data.get('clients')} clients, {data.get('phones')} phones, "
        f"{data.get('employees')} employees; callers {data.get('known_share', 0) * 100:.0f}% "
        f"known (routed), rest unknown; floor routes every trigger to one fixed extension"
    )
    head = (f"{'mode':<6}{'rate/s':>8}{'sent':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'lost':>7}{'wrong':>7}{'errors':>8}{'lag99 ms':>10}{'sent/s':>8}  ok")
    lines.append(head)
    lines.append("-" * len(head))
    for mode, m in results.get("modes", {}).items():
        rows = [(int(r), False, v) for r, v in m.get("rates", {}).items()]
        rows += [(int(v["rate"]), True, v) for v in m.get("search", [])]
        for rate, search, v in rows:
            lines.append(
                f"{mode:<6}{(str(rate) + ('*' if search else '')):>8}{v['sent']:>8}"
                f"{_fmt(v['p50_ms']):>9}{_fmt(v['p99_ms']):>9}{_fmt(v['max_ms'], '.1f'):>9}"
                f"{v['lost']:>7}{v['wrong']:>7}{v['errors']:>8}{_fmt(v['lag_p99_ms'], '.1f'):>10}"
                f"{_fmt(v['achieved_rate'], '.0f'):>8}  {'yes' if v['passed'] else 'no'}"
            )
        err = f"  ERROR: {m['error']}" if m.get("error") else ""
        lines.append(f"{mode:<6} max sustainable rate: {_fmt(m.get('max_rate'))}/s{err}")
        if m.get("automation"):
            lines.append(f"{mode:<6} {_automation_line(m['automation'])}")
        if m.get("paired"):
            lines.append(f"{mode:<6} {_paired_line(m['paired'])}")
    lines.append("(* = step-up search step; sustainable = p99 <= 50 ms, nothing lost or wrong, "
                 "no errors, generator at >= 95% of the rate)")
    ib = results.get("index_build", {})
    lines.append(
        f"index build: {_fmt(ib.get('clients'))} clients / {_fmt(ib.get('phones'))} phones in "
        f"{_fmt(ib.get('seconds'))} s, +{_fmt(ib.get('rss_mb'), '.1f')} MB RSS; lookup median "
        f"{_fmt(ib.get('lookup_median_us'))} us, p99 {_fmt(ib.get('lookup_p99_us'))} us"
        + (f"; import {_fmt(ib.get('import_seconds'), '.1f')} s" if ib.get("import_seconds")
           else "")
    )
    fr = results.get("freshness", {})
    lines.append(f"freshness: {_fmt(fr.get('changes'))} changes, p50 {_fmt(fr.get('p50_ms'))} ms,"
                 f" p99 {_fmt(fr.get('p99_ms'))} ms")
    sc = results.get("sidecar", {})
    lines.append(f"sidecar GET /route: concurrency {_fmt(sc.get('concurrency'))}, "
                 f"{_fmt(sc.get('rps'), '.0f')} req/s, p99 {_fmt(sc.get('p99_ms'))} ms")
    lines.append("")
    lines.append("targets:")
    for t in results.get("targets", []):
        verdict = "n/a" if t["passed"] is None else ("PASS" if t["passed"] else "FAIL")
        lines.append(f"  [{verdict:>4}] {t['name']}: {t['detail']}")
    notes = results.get("notes", [])
    if notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(f"  - {n}" for n in notes)
    return "\n".join(lines)

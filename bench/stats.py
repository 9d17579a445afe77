"""Percentiles and the verdict on one load step: latencies, lost and wrong routes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "LatencySummary",
    "RouteSeen",
    "StepOutcome",
    "evaluate_step",
    "percentile",
    "summarize",
    "sustained",
]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    count: int
    p50: float
    p99: float
    max: float

    @staticmethod
    def empty() -> LatencySummary:
        return LatencySummary(count=0, p50=math.nan, p99=math.nan, max=math.nan)


def summarize(values: Sequence[float]) -> LatencySummary:
    if not values:
        return LatencySummary.empty()
    ordered = sorted(values)
    return LatencySummary(
        count=len(ordered),
        p50=percentile(ordered, 50),
        p99=percentile(ordered, 99),
        max=ordered[-1],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSeen:
    """A ``commands/route`` the PBX emulator received, matched to a call of the step."""

    call: int
    to_number: str
    received_at: float  # time.monotonic() in the PBX process


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    sent: int  # triggers sent
    expected: int  # triggers that should be routed
    routed: int  # correct routes
    lost: int  # expected routes that did not come
    wrong: int  # a route to another extension, or for a caller that must not be routed
    duplicates: int  # a second route for one call (also counted in wrong)
    latencies_ms: list[float]  # trigger sent -> route received, correct routes only
    latency: LatencySummary


def evaluate_step(
    expected: Sequence[str | None],
    send_times: Sequence[float],
    routes: Sequence[RouteSeen],
) -> StepOutcome:
    """Match routes to calls. ``expected[i]`` is the extension call ``i`` must reach
    (None: must not be routed); ``send_times[i]`` when its trigger went out (NaN if
    it never did). Routes for calls outside the step are wrong."""
    if len(expected) != len(send_times):
        raise ValueError("expected and send_times differ in length")
    seen: set[int] = set()
    latencies: list[float] = []
    wrong = duplicates = routed = 0
    for route in sorted(routes, key=lambda r: r.received_at):
        i = route.call
        if not 0 <= i < len(expected):
            wrong += 1
            continue
        if i in seen:
            duplicates += 1
            wrong += 1
            continue
        seen.add(i)
        want = expected[i]
        if want is None or route.to_number != want:
            wrong += 1
            continue
        routed += 1
        sent_at = send_times[i]
        if not math.isnan(sent_at):
            latencies.append((route.received_at - sent_at) * 1000.0)
    n_expected = sum(1 for e in expected if e is not None)
    lost = sum(1 for i, e in enumerate(expected) if e is not None and i not in seen)
    return StepOutcome(
        sent=sum(1 for t in send_times if not math.isnan(t)),
        expected=n_expected,
        routed=routed,
        lost=lost,
        wrong=wrong,
        duplicates=duplicates,
        latencies_ms=latencies,
        latency=summarize(latencies),
    )


def sustained(
    outcome: StepOutcome,
    *,
    rate: float,
    achieved_rate: float,
    errors: int,
    p99_limit_ms: float,
    min_rate_share: float = 0.95,
) -> bool:
    """A rate is sustained when p99 stays within the limit, nothing is lost or wrong,
    every request was accepted, and the generator really sent at that rate."""
    if outcome.latency.count == 0 and outcome.expected > 0:
        return False
    p99 = outcome.latency.p99
    return (
        (outcome.expected == 0 or (not math.isnan(p99) and p99 <= p99_limit_ms))
        and outcome.lost == 0
        and outcome.wrong == 0
        and errors == 0
        and achieved_rate >= min_rate_share * rate
    )

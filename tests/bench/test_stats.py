from __future__ import annotations

import math

import pytest

from bench.stats import RouteSeen, StepOutcome, evaluate_step, percentile, summarize, sustained


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7.0], 99) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_summary_of_unsorted_values() -> None:
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.count, s.p50, s.p99, s.max) == (5, 3.0, 5.0, 5.0)
    empty = summarize([])
    assert empty.count == 0
    assert math.isnan(empty.p99)


def _route(i: int, ext: str, at: float) -> RouteSeen:
    return RouteSeen(call=i, to_number=ext, received_at=at)


def test_evaluate_step_counts_lost_wrong_and_latency() -> None:
    expected = ["101", "102", None, "104", "105"]
    sent = [10.0, 10.1, 10.2, 10.3, math.nan]
    routes = [
        _route(0, "101", 10.002),  # right, 2 ms
        _route(1, "999", 10.105),  # wrong extension
        _route(2, "103", 10.204),  # a route for a caller that must not be routed
        _route(0, "101", 10.009),  # second route for one call
        _route(42, "101", 10.5),  # a call that is not in the step
    ]
    out = evaluate_step(expected, sent, routes)
    assert out.sent == 4
    assert out.expected == 4
    assert out.routed == 1
    assert out.lost == 2  # calls 3 and 4 got nothing
    assert out.wrong == 4
    assert out.duplicates == 1
    assert out.latencies_ms == pytest.approx([2.0])
    assert out.latency.p99 == pytest.approx(2.0)


def test_evaluate_step_all_right() -> None:
    expected = [str(100 + i) for i in range(100)]
    sent = [i * 0.01 for i in range(100)]
    routes = [_route(i, str(100 + i), i * 0.01 + (i + 1) / 1000) for i in range(100)]
    out = evaluate_step(expected, sent, routes)
    assert (out.lost, out.wrong, out.routed) == (0, 0, 100)
    assert out.latency.p50 == pytest.approx(50.0)
    assert out.latency.p99 == pytest.approx(99.0)
    assert out.latency.max == pytest.approx(100.0)
    with pytest.raises(ValueError, match="length"):
        evaluate_step(expected, sent[:-1], routes)


def test_sustained() -> None:
    expected = ["1"] * 10
    sent = [float(i) for i in range(10)]
    fast = evaluate_step(expected, sent, [_route(i, "1", i + 0.001) for i in range(10)])
    slow = evaluate_step(expected, sent, [_route(i, "1", i + 0.2) for i in range(10)])
    lossy = evaluate_step(expected, sent, [_route(i, "1", i + 0.001) for i in range(9)])

    def ok(o: StepOutcome, *, errors: int = 0, achieved: float = 100.0) -> bool:
        return sustained(o, rate=100.0, achieved_rate=achieved, errors=errors, p99_limit_ms=50.0)

    assert ok(fast)
    assert not ok(slow)
    assert not ok(lossy)
    assert not ok(fast, errors=1)
    assert not ok(fast, achieved=80.0)

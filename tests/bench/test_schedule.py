from __future__ import annotations

import pytest

from bench.schedule import EventKind, StepUpSearch, build_schedule, call_count


def test_call_count() -> None:
    assert call_count(250, 10) == 2500
    assert call_count(1000, 1.5) == 1500
    assert call_count(0, 10) == 0
    assert call_count(3, 0.1) == 1


def test_schedule_is_open_loop_at_fixed_intervals() -> None:
    events = build_schedule(1000, 2, connected_s=0.1, end_s=1.1)
    triggers = [(t, i) for t, k, i in events if k is EventKind.TRIGGER]
    assert len(triggers) == 2000
    assert [i for _, i in triggers] == list(range(2000))
    for t, i in triggers:
        assert t == pytest.approx(i / 1000)
    assert [t for t, _, _ in events] == sorted(t for t, _, _ in events)
    # each call: a trigger, then its Connected, Disconnected and summary at fixed delays
    by_call = {k: t for t, k, i in events if i == 7}
    assert by_call[EventKind.CONNECTED] - by_call[EventKind.TRIGGER] == pytest.approx(0.1)
    assert by_call[EventKind.DISCONNECTED] - by_call[EventKind.TRIGGER] == pytest.approx(1.1)
    assert by_call[EventKind.SUMMARY] > by_call[EventKind.DISCONNECTED]
    assert len(events) == 4 * 2000


def test_schedule_can_leave_followups_out() -> None:
    events = build_schedule(100, 1, connected_s=-1, end_s=-1)
    assert {k for _, k, _ in events} == {EventKind.TRIGGER}
    assert len(events) == 100


def test_search_climbs_from_best_fixed_pass_then_bisects() -> None:
    s = StepUpSearch.from_fixed(
        [(250, True), (500, True), (1000, True), (2000, True)], factor=1.5, max_steps=5, cap=20000
    )
    assert s.best == 2000
    assert s.next_rate() == 3000
    s.record(3000, True)
    assert s.next_rate() == 4500
    s.record(4500, False)
    mid = s.next_rate()
    assert mid is not None
    assert 3000 < mid < 4500
    s.record(mid, True)
    assert s.best == mid
    assert s.failed == 4500


def test_search_bisects_when_a_fixed_rate_failed() -> None:
    s = StepUpSearch.from_fixed(
        [(2000, False), (250, True), (1000, True), (500, True)], factor=1.5, max_steps=5,
        cap=20000,
    )
    assert (s.best, s.failed) == (1000, 2000)
    rate = s.next_rate()
    assert rate is not None
    assert 1000 < rate < 2000
    # a pass above a failure at a lower fixed rate is not trusted
    s2 = StepUpSearch.from_fixed([(250, False), (500, True)], factor=2, max_steps=3, cap=9000)
    assert s2.best is None
    assert s2.next_rate() is None


def test_search_stops_at_steps_cap_and_resolution() -> None:
    s = StepUpSearch.from_fixed([(1000, True)], factor=2, max_steps=2, cap=3000)
    assert s.next_rate() == 2000
    s.record(2000, True)
    assert s.next_rate() == 3000  # capped
    s.record(3000, True)
    assert s.next_rate() is None  # no steps left (and at the cap)
    near = StepUpSearch(factor=1.5, max_steps=9, cap=10**6, best=1000, failed=1100)
    assert near.next_rate() is None

"""When each event of a load step is sent, and which rate the step-up search tries next.

Pure logic: no clocks, no I/O. The load generator turns the offsets into absolute
monotonic times; the runner feeds each step's verdict to ``StepUpSearch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["EventKind", "StepUpSearch", "build_schedule", "call_count"]


class EventKind(IntEnum):
    TRIGGER = 0  # events/call: ivr Appeared (the routing trigger)
    CONNECTED = 1  # events/call: ivr Connected (the greeting plays)
    DISCONNECTED = 2  # events/call: ivr Disconnected (the caller left the voice menu)
    SUMMARY = 3  # events/summary


def call_count(rate: float, seconds: float) -> int:
    """Calls in a step: one every ``1 / rate`` seconds for ``seconds``."""
    if rate <= 0 or seconds <= 0:
        return 0
    return max(1, round(rate * seconds))


def build_schedule(
    rate: float, seconds: float, *, connected_s: float, end_s: float
) -> list[tuple[float, EventKind, int]]:
    """Every event of a step as ``(offset_s, kind, call)``, sorted by offset.

    Call ``i``'s trigger is at ``i / rate`` (open loop: fixed intervals, whatever
    the answers); its other events follow it by fixed delays. A negative delay
    leaves that event out.
    """
    n = call_count(rate, seconds)
    step = 1.0 / rate if n else 0.0
    events: list[tuple[float, EventKind, int]] = []
    for i in range(n):
        t = i * step
        events.append((t, EventKind.TRIGGER, i))
        if connected_s >= 0:
            events.append((t + connected_s, EventKind.CONNECTED, i))
        if end_s >= 0:
            events.append((t + end_s, EventKind.DISCONNECTED, i))
            events.append((t + end_s + 0.002, EventKind.SUMMARY, i))
    events.sort()
    return events


@dataclass(slots=True, kw_only=True)
class StepUpSearch:
    """The highest sustainable rate: grow by ``factor`` from the best known pass, then
    bisect (geometrically) between the best pass and the lowest failure.

    ``best`` is the highest rate known to pass, ``failed`` the lowest known to fail
    above it. The search is over after ``max_steps`` steps, when the next rate would
    exceed ``cap``, or when pass and failure are within ``resolution`` of each other.
    """

    factor: float
    max_steps: int
    cap: int
    best: int | None = None
    failed: int | None = None
    steps: int = 0
    resolution: float = 1.2

    @staticmethod
    def from_fixed(
        results: list[tuple[int, bool]], *, factor: float, max_steps: int, cap: int
    ) -> StepUpSearch:
        """Start from the fixed rates: the best is the last pass before the first failure."""
        search = StepUpSearch(factor=factor, max_steps=max_steps, cap=cap)
        for rate, passed in sorted(results):
            if not passed:
                search.failed = rate
                break
            search.best = rate
        return search

    def next_rate(self) -> int | None:
        if self.best is None or self.steps >= self.max_steps:
            return None  # nothing passed at all: there is no floor to climb from
        if self.failed is not None:
            if self.failed <= self.best * self.resolution:
                return None
            rate = _round_rate(math.sqrt(self.best * self.failed))
            return rate if self.best < rate < self.failed else None
        rate = _round_rate(self.best * self.factor)
        if rate > self.cap:
            rate = self.cap
        return rate if rate > self.best else None

    def record(self, rate: int, passed: bool) -> None:
        self.steps += 1
        if passed:
            if self.best is None or rate > self.best:
                self.best = rate
        elif self.failed is None or rate < self.failed:
            self.failed = rate


def _round_rate(rate: float) -> int:
    """Readable rates: multiples of 50 from 500 up, of 10 below."""
    unit = 50 if rate >= 500 else 10
    return max(unit, round(rate / unit) * unit)

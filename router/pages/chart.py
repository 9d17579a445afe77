"""The overview's chart, laid out here and drawn by the template as SVG (no script).

Each hour has a stacked bar of what routing decided (routed, then each reason
it did not, then calls it never decided: outgoing, internal, routing off) and,
beside it, a thin bar of the calls missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Bar", "Chart", "HourFigures", "lay_out"]

WIDTH, HEIGHT = 760, 240
_LEFT, _BOTTOM, _TOP = 36, 22, 10
_SERIES_LIMIT = 6  # reasons drawn apart; the rest are "other"


class HourFigures(Protocol):
    hour: int
    routed: int
    undecided: int
    missed: int

    @property
    def not_routed(self) -> Mapping[str, int]: ...


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str  # a CSS class: routed, reason-N, undecided, missed
    title: str  # the hover text: hour, series, count


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, int], ...]  # (y, value) of the scale's lines
    hours: tuple[tuple[float, int], ...]  # (x, hour) labels under the bars
    reasons: tuple[tuple[str, str], ...]  # (series class, reason) for the legend
    peak: int


def _nice(peak: int) -> int:
    """The scale's top: 1, 2 or 5 times a power of ten, at least ``peak``."""
    base = 1
    while True:
        for times in (1, 2, 5):
            if base * times >= peak:
                return base * times
        base *= 10


def lay_out(hours: Sequence[HourFigures], *, label: Mapping[str, str]) -> Chart:
    """Bars for 24 hours. ``label`` names a series for the hover text (translated)."""
    totals: dict[str, int] = {}
    for h in hours:
        for reason, n in h.not_routed.items():
            totals[reason] = totals.get(reason, 0) + n
    named = [r for r, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
    shown = named[:_SERIES_LIMIT] if len(named) <= _SERIES_LIMIT else named[:_SERIES_LIMIT - 1]
    series_of = {reason: f"reason-{i}" for i, reason in enumerate(shown)}
    other = len(named) > len(shown)

    peak = max([h.routed + sum(h.not_routed.values()) + h.undecided for h in hours] +
               [h.missed for h in hours] + [0])
    top = _nice(peak)
    plot_w, plot_h = WIDTH - _LEFT - 6, HEIGHT - _BOTTOM - _TOP
    slot = plot_w / max(len(hours), 1)
    scale = plot_h / top
    bars: list[Bar] = []
    for i, h in enumerate(hours):
        x = _LEFT + i * slot + slot * 0.12
        y = float(HEIGHT - _BOTTOM)
        stack: list[tuple[str, str, int]] = [("routed", label.get("routed", "routed"), h.routed)]
        rest = 0
        for reason, n in sorted(h.not_routed.items()):
            if reason in series_of:
                stack.append((series_of[reason], label.get(reason, reason), n))
            else:
                rest += n
        if rest:
            stack.append(("reason-other", label.get("other", "other"), rest))
        stack.append(("undecided", label.get("undecided", "undecided"), h.undecided))
        for series, name, n in stack:
            if n <= 0:
                continue
            height = n * scale
            y -= height
            bars.append(Bar(x, y, slot * 0.55, height, series, f"{h.hour:02d}:00 {name}: {n}"))
        if h.missed > 0:
            height = h.missed * scale
            bars.append(Bar(x + slot * 0.58, HEIGHT - _BOTTOM - height, slot * 0.2, height,
                            "missed", f"{h.hour:02d}:00 {label.get('missed', 'missed')}: "
                                      f"{h.missed}"))
    ticks = tuple((HEIGHT - _BOTTOM - v * scale, v) for v in (0, top // 2, top) if top > 1 or v)
    labels = tuple((_LEFT + i * slot + slot * 0.45, h.hour) for i, h in enumerate(hours)
                   if h.hour % 3 == 0)
    legend = tuple((series_of[r], r) for r in shown) + ((("reason-other", "other"),)
                                                        if other else ())
    return Chart(WIDTH, HEIGHT, tuple(bars), ticks, labels, legend, peak)

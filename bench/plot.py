"""``latency.png``: the latency distribution of every mode, one panel per fixed rate."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.modes import ModeResult

__all__ = ["plot_latency"]

logger = logging.getLogger(__name__)

_COLOURS = {"floor": "tab:gray", "index": "tab:green", "sql": "tab:blue", "crm": "tab:red"}


def plot_latency(modes: Sequence[ModeResult], rates: Sequence[int], path: Path) -> None:
    """Empirical CDFs of trigger -> route latency, log scale, per rate and mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, len(rates))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.0), squeeze=False, sharey=True)
    for ax, rate in zip(axes[0], rates, strict=False):
        drawn = False
        for m in modes:
            step = next((s for s in m.fixed() if s.rate == rate), None)
            if step is None or not step.outcome.latencies_ms:
                continue
            values = sorted(max(v, 1e-3) for v in step.outcome.latencies_ms)
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.plot(values, ys, label=f"{m.mode} (p99 {step.outcome.latency.p99:.1f})",
                    color=_COLOURS.get(m.mode))
            drawn = True
        ax.set_xscale("log")
        ax.set_title(f"{rate} calls/s")
        ax.set_xlabel("trigger sent → route received, ms")
        ax.axhline(0.99, color="black", linewidth=0.5, linestyle=":")
        ax.grid(True, which="both", alpha=0.3)
        if drawn:
            ax.legend(fontsize=8, loc="lower right")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")
    axes[0][0].set_ylabel("share of calls")
    fig.suptitle("Routing latency per mode (CDF; dotted line = p99)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

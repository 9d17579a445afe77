"""What one benchmark run does: rates, durations, data sizes and modes, fixed at start."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["ALL_MODES", "QUICK_MODES", "BenchConfig", "parse_args"]

ALL_MODES: tuple[str, ...] = ("floor", "index", "auto", "sql", "crm")
# auto (about 20 s more on 2 cores) does not fit the quick run's 90 s; --modes adds it
QUICK_MODES: tuple[str, ...] = ("floor", "index", "sql", "crm")
_OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    quick: bool
    modes: tuple[str, ...]
    rates: tuple[int, ...]
    step_seconds: float  # each fixed rate
    warmup_seconds: float  # before a mode's first counted step, at its highest fixed rate
    search_seconds: float  # each step of the step-up search
    search_factor: float
    search_max_steps: int
    search_cap: int  # never try a rate above this
    # P1's rate: index and auto run it as rounds of a floor step then their own, back to
    # back (the floor stays up), and are judged against those floor steps
    pair_rate: int
    pair_rounds: int  # 0: one step of their own, judged against the floor mode's
    pair_seconds: float  # each step of a round
    clients: int  # data set of the load modes
    index_clients: int  # data set of the index build figures (0 = skip)
    lookup_samples: int
    freshness_changes: int  # 0 = skip
    sidecar_seconds: float  # 0 = skip
    sidecar_concurrency: int
    crm_latency_ms: float
    # auto mode: the emulator's rate cap and the service's MEGAPLAN_RATE (requests/s)
    auto_crm_rate: int
    route_deadline_ms: int
    followup_connected_s: float  # the ivr leg's Connected, after the trigger
    followup_end_s: float  # the ivr leg's Disconnected and the summary, after the trigger
    known_share: float
    p99_limit_ms: float
    budget_s: float  # the whole run; the step-up search stops early to keep it
    seed: int
    out_dir: Path
    work_dir: Path | None  # None: a fresh temporary directory, removed at the end
    keep_work: bool
    pin: bool  # the service under test on a core of its own (bench.cpus); off by default

    @staticmethod
    def full() -> BenchConfig:
        return BenchConfig(
            quick=False,
            modes=ALL_MODES,
            rates=(250, 500, 1000, 2000),
            step_seconds=10.0,
            warmup_seconds=2.0,
            search_seconds=4.0,
            search_factor=1.5,
            search_max_steps=5,
            search_cap=20000,
            pair_rate=1000,
            pair_rounds=3,
            pair_seconds=5.0,
            clients=100_000,
            index_clients=1_000_000,
            lookup_samples=200_000,
            freshness_changes=100,
            sidecar_seconds=5.0,
            sidecar_concurrency=32,
            crm_latency_ms=150.0,
            auto_crm_rate=50,
            route_deadline_ms=1000,
            followup_connected_s=0.1,
            followup_end_s=1.1,
            known_share=0.9,
            p99_limit_ms=50.0,
            budget_s=570.0,
            seed=20240501,
            out_dir=_OUT,
            work_dir=None,
            keep_work=False,
            pin=False,
        )

    def pairs_with_floor(self, mode: str) -> bool:
        """Whether ``mode`` runs ``pair_rate`` as rounds beside the floor's steps."""
        return mode in ("index", "auto") and self.pair_rounds > 0 and self.pair_rate in self.rates

    @staticmethod
    def quick_run() -> BenchConfig:
        return replace(
            BenchConfig.full(),
            quick=True,
            modes=QUICK_MODES,
            rates=(250, 1000),
            step_seconds=2.0,
            warmup_seconds=2.0,
            search_seconds=1.5,
            search_factor=2.0,
            search_max_steps=2,
            pair_rounds=1,
            pair_seconds=2.0,
            clients=10_000,
            index_clients=100_000,
            lookup_samples=50_000,
            freshness_changes=30,
            sidecar_seconds=1.5,
            followup_end_s=1.1,
            budget_s=88.0,
        )


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the routing hot path against its floor and its alternatives.",
    )
    p.add_argument("--quick", action="store_true", help="a reduced run (at most ~90 s)")
    p.add_argument("--modes", help=f"comma-separated subset of {','.join(ALL_MODES)}")
    p.add_argument("--rates", help="comma-separated fixed rates in calls/s")
    p.add_argument("--seconds", type=float, help="seconds per fixed rate")
    p.add_argument("--warmup-seconds", type=float,
                   help="uncounted load before each mode's first step (0 = none)")
    p.add_argument("--search-seconds", type=float, help="seconds per step-up step")
    p.add_argument("--search-steps", type=int, help="most step-up steps per mode (0 = none)")
    p.add_argument("--pair-rounds", type=int,
                   help="index and auto at 1000/s: rounds of a floor step then theirs "
                        "(0 = one step of their own, judged against the floor mode's)")
    p.add_argument("--pair-seconds", type=float, help="seconds of each step of a round")
    p.add_argument("--clients", type=int, help="clients in the load modes' data set")
    p.add_argument("--index-clients", type=int, help="clients for the index figures (0 = skip)")
    p.add_argument("--freshness", type=int, help="changes for the freshness figure (0 = skip)")
    p.add_argument("--sidecar-seconds", type=float, help="sidecar test length (0 = skip)")
    p.add_argument("--budget", type=float, help="seconds the whole run may take")
    p.add_argument("--deadline-ms", type=int, help="ROUTE_DEADLINE_MS given to the service")
    p.add_argument("--auto-rate", type=int,
                   help="auto mode: the CRM's rate cap and MEGAPLAN_RATE (requests/s)")
    p.add_argument("--no-followups", action="store_true",
                   help="send only the triggers (no Connected, Disconnected, summary)")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", type=Path, help="output directory (default bench/out)")
    p.add_argument("--work-dir", type=Path, help="where data and databases go (kept)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary work dir")
    p.add_argument("--pin", action="store_true",
                   help="the service under test on a core of its own, everything else on "
                        "the others (default: every process left to the kernel)")
    a = p.parse_args(argv)
    cfg = BenchConfig.quick_run() if a.quick else BenchConfig.full()
    if a.modes:
        modes = tuple(m.strip() for m in a.modes.split(",") if m.strip())
        bad = [m for m in modes if m not in ALL_MODES]
        if bad or not modes:
            p.error(f"--modes: unknown {bad}; choose from {','.join(ALL_MODES)}")
        cfg = replace(cfg, modes=modes)
    if a.rates:
        try:
            rates = tuple(sorted({int(r) for r in a.rates.split(",") if r.strip()}))
        except ValueError:
            p.error("--rates: integers, comma-separated")
        if not rates or rates[0] <= 0:
            p.error("--rates: positive integers")
        cfg = replace(cfg, rates=rates)
    pairs: list[tuple[str, float | int | None]] = [
        ("step_seconds", a.seconds),
        ("warmup_seconds", a.warmup_seconds),
        ("search_seconds", a.search_seconds),
        ("search_max_steps", a.search_steps),
        ("pair_rounds", a.pair_rounds),
        ("pair_seconds", a.pair_seconds),
        ("clients", a.clients),
        ("index_clients", a.index_clients),
        ("freshness_changes", a.freshness),
        ("sidecar_seconds", a.sidecar_seconds),
        ("budget_s", a.budget),
        ("route_deadline_ms", a.deadline_ms),
        ("auto_crm_rate", a.auto_rate),
        ("seed", a.seed),
    ]
    changes: dict[str, Any] = {}
    for name, value in pairs:
        if value is not None:
            if value < 0:
                p.error(f"{name}: must not be negative")
            changes[name] = value
    if a.no_followups:
        changes.update(followup_connected_s=-1.0, followup_end_s=-1.0)
    cfg = replace(cfg, **changes)
    if cfg.clients < 100:
        p.error("--clients: at least 100")
    if cfg.auto_crm_rate < 1:
        p.error("--auto-rate: at least 1")
    if cfg.pair_rounds > 0 and cfg.pair_seconds <= 0:
        p.error("--pair-seconds: more than 0 (or --pair-rounds 0)")
    if a.out is not None:
        cfg = replace(cfg, out_dir=a.out)
    if a.work_dir is not None:
        cfg = replace(cfg, work_dir=a.work_dir, keep_work=True)
    if a.keep_work:
        cfg = replace(cfg, keep_work=True)
    if a.pin:
        cfg = replace(cfg, pin=True)
    return cfg

"""A mode's steps: P1's rate as rounds paired with the floor, within the time budget."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench import modes
from bench.config import BenchConfig
from bench.data import DatasetInfo
from bench.modes import LoadTarget, StepResult, run_mode
from bench.pbxproc import PbxProcess
from bench.procs import ChildProcess
from bench.stats import RouteSeen, evaluate_step

FLOOR = LoadTarget(mode="floor", host="127.0.0.1", port=1, api_key="k", salt="s",
                   fixed_route="100")
INDEX = LoadTarget(mode="index", host="127.0.0.1", port=2, api_key="k", salt="s",
                   fixed_route=None)
CFG = replace(BenchConfig.full(), rates=(250, 1000), search_max_steps=0, warmup_seconds=2.0,
              step_seconds=10.0, pair_rounds=3, pair_seconds=5.0)


@dataclass
class _FakeSteps:
    """``run_step`` without processes: a clock that each step moves, and what was run."""

    now: float = 1000.0
    runs: list[tuple[str, int, float, str]] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def run_step(self, _cfg: BenchConfig, target: LoadTarget, *_: Any, rate: int,
                 seconds: float, search: bool, run_token: str, warmup: bool = False,
                 paired_with: str | None = None) -> StepResult:
        self.now += seconds + 2.0
        kind = "warm-up" if warmup else f"paired with {paired_with}" if paired_with else ""
        self.runs.append((target.mode, rate, seconds, kind))
        ms = 1.0 if target.mode == "floor" else 2.0 + len(self.runs)  # each step slower
        n = 10
        sent = [i * 0.01 for i in range(n)]
        outcome = evaluate_step(["101"] * n, sent, [
            RouteSeen(call=i, to_number="101", received_at=sent[i] + ms / 1000)
            for i in range(n)])
        return StepResult(rate=rate, seconds=seconds, search=search, outcome=outcome,
                          lag_p99_ms=0.5, lag_max_ms=1.0, achieved_rate=float(rate), errors=0,
                          triggers_failed=0, first_error=None, stray_routes=0, passed=True)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> _FakeSteps:
    steps = _FakeSteps()
    monkeypatch.setattr(modes, "run_step", steps.run_step)
    monkeypatch.setattr(modes, "time", SimpleNamespace(monotonic=steps.monotonic))
    return steps


def _run(fake: _FakeSteps, cfg: BenchConfig, *, floor: LoadTarget | None,
         budget: float = 1000.0) -> modes.ModeResult:
    return run_mode(cfg, INDEX, cast(DatasetInfo, None), cast(ChildProcess, None),
                    cast(PbxProcess, None), run_token="t", deadline=fake.now + budget,
                    floor=floor)


def test_p1s_rate_runs_as_rounds_of_a_floor_step_then_the_modes_after_both_warm_up(
        fake: _FakeSteps) -> None:
    result = _run(fake, CFG, floor=FLOOR)
    assert fake.runs == [
        ("index", 1000, 2.0, "warm-up"), ("index", 250, 10.0, ""),
        ("floor", 1000, 2.0, "warm-up"), ("index", 1000, 2.0, "warm-up"),
        *[step for _ in range(3) for step in (("floor", 1000, 5.0, "paired with index"),
                                              ("index", 1000, 5.0, "paired with floor"))]]
    assert result.paired is not None
    assert len(result.paired.rounds) == 3
    at_1000 = [s for s in result.fixed() if s.rate == 1000]
    assert len(at_1000) == 1  # the three steps pooled, as the mode's figure
    assert at_1000[0].outcome.sent == 30
    assert at_1000[0].outcome.latency.p99 == pytest.approx(2.0 + 10)  # its slowest step
    assert result.paired.floor().outcome.latency.p99 == pytest.approx(1.0)


def test_without_rounds_the_mode_runs_its_own_step_and_the_floor_is_not_touched(
        fake: _FakeSteps) -> None:
    for cfg, floor in ((replace(CFG, pair_rounds=0), FLOOR), (CFG, None)):
        fake.runs.clear()
        result = _run(fake, cfg, floor=floor)
        assert [r for r in fake.runs if r[0] == "floor"] == []
        assert ("index", 1000, 10.0, "") in fake.runs
        assert result.paired is None


def test_a_short_budget_runs_fewer_rounds_and_says_so(fake: _FakeSteps) -> None:
    # warm-up 4 s, 250/s 12 s, both warm-ups 8 s, then each step 7 s: one round fits
    result = _run(fake, CFG, floor=FLOOR, budget=4 + 12 + 8 + 14 + 6)
    assert result.paired is not None
    assert len(result.paired.rounds) == 1
    assert "index: 1 of 3 rounds paired with the floor (time budget)" in result.notes


def test_only_index_and_auto_pair_with_the_floor_and_only_at_one_of_their_rates() -> None:
    assert CFG.pairs_with_floor("index")
    assert CFG.pairs_with_floor("auto")
    assert not any(CFG.pairs_with_floor(m) for m in ("floor", "sql", "crm"))
    assert not replace(CFG, rates=(250, 500)).pairs_with_floor("index")
    assert not replace(CFG, pair_rounds=0).pairs_with_floor("index")


def test_the_warm_up_runs_at_p1s_rate_not_at_a_higher_one_that_saturates(
        fake: _FakeSteps) -> None:
    _run(fake, replace(CFG, rates=(250, 1000, 2000)), floor=None)
    assert fake.runs[0] == ("index", 1000, 2.0, "warm-up")
    fake.runs.clear()
    _run(fake, replace(CFG, rates=(250, 500)), floor=None)  # P1's rate not run: the highest
    assert fake.runs[0] == ("index", 500, 2.0, "warm-up")

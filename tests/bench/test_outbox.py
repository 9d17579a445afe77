"""bench.outbox: what the calls should plan, what "landed exactly once" means in the
emulator's counters, the live call model's bytes per call, and a tiny run end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from bench.outbox import bytes_per_live_call, expected_actions, landed_once


def test_a_known_number_plans_two_actions_and_a_new_numbers_first_call_three() -> None:
    known = {"79000000001": "101"}
    seen: set[str] = set()
    assert expected_actions(["79000000001"], known, seen) == 2  # a deal, the call recorded
    assert expected_actions(["74950000001"], known, seen) == 3  # and its client first
    assert expected_actions(["74950000001", "79000000001"], known, seen) == 4  # known now
    assert seen == {"74950000001"}


def test_landed_once_when_the_crm_counted_each_done_action_once() -> None:
    done = {"create_client": 2, "create_deal": 5, "record_call": 5}
    applied = {"client_created": 2, "deal_created": 5, "call_recorded": 5}
    assert landed_once(done, applied) == []


def test_a_deal_missing_or_a_call_posted_again_is_not_landing_once() -> None:
    done = {"create_deal": 5, "record_call": 5}
    problems = landed_once(done, {"deal_created": 4, "call_recorded": 5, "call_updated": 1})
    assert problems == ["create_deal: 5 done, the CRM counted 4 deal_created",
                        "1 calls were posted again"]
    assert landed_once({"set_responsible": 1}, {}) == ["unexpected actions ['set_responsible']"]


def test_a_live_call_costs_a_few_hundred_bytes() -> None:
    got = bytes_per_live_call(5000)
    assert 100 < got["traced_bytes_per_call"] < 1000


def test_a_tiny_outbox_run_lands_every_action_once(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.outbox", "--calls", "20", "--outage-calls", "10",
         "--down-seconds", "2", "--clients", "300", "--live-calls", "1000", "--rate", "100",
         "--out", str(tmp_path)], capture_output=True, timeout=110, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    got = orjson.loads((tmp_path / "outbox.json").read_bytes())
    drain, outage = got["drain"], got["outage"]
    assert drain["exactly_once"], drain["problems"]
    assert drain["actions"] == drain["expected_actions"] >= 40
    assert drain["by_action"]["create_deal"] == drain["by_action"]["record_call"] == 20
    assert outage["every_action_once"], outage["problems"]
    assert outage["drain_after_back_s"] is not None
    assert got["memory"]["live_calls"] == 1000
    assert b"backlog drain: 20 calls" in proc.stdout

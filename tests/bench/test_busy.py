"""bench.busy: a tiny run end to end, two replicas on one database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson


def test_a_tiny_busy_run_sees_every_change_on_the_other_replica(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.busy", "--changes", "6",
                           "--out", str(tmp_path)], capture_output=True, timeout=110, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    busy = orjson.loads((tmp_path / "busy.json").read_bytes())["busy"]
    assert (busy["changes"], busy["seen"], busy["lost"]) == (6, 6, 0)
    assert 0 < busy["p50_ms"] <= busy["p99_ms"] <= busy["max_ms"]
    assert b"busy on the other replica: 6 of 6 changes seen" in proc.stdout

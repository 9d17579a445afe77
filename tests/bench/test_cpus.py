"""Where the benchmark's processes run: the service on a core of its own, the rest
on the others; pinning reaches a process's children and threads, and the flag."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.config import parse_args
from bench.cpus import CpuLayout, allowed_cpus, pin, postmaster_pid, split_cpus
from bench.procs import free_port
from bench.service import ServiceProcess, ServiceSpec

ALLOWED = allowed_cpus()
needs_two = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two allowed cores")

# a parent with a thread started before it is pinned, and a child of its own
_PARENT = """
import subprocess, sys, threading, time
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_the_service_gets_the_first_core_and_the_rest_the_others() -> None:
    assert split_cpus([3, 1, 2]) == CpuLayout(service=frozenset({1}), rest=frozenset({2, 3}))
    assert split_cpus([0, 1]) == CpuLayout(service=frozenset({0}), rest=frozenset({1}))


def test_one_core_is_not_split() -> None:
    assert split_cpus([5]) is None
    assert split_cpus([]) is None


def test_the_allowed_cores_are_this_process_affinity() -> None:
    assert allowed_cpus() == frozenset(os.sched_getaffinity(0))


def test_where_the_os_keeps_no_affinity_no_core_is_known_and_nothing_is_split(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity")  # as on macOS
    assert allowed_cpus() == frozenset()
    assert split_cpus(allowed_cpus()) is None


def test_the_layout_says_which_core_is_whose() -> None:
    text = CpuLayout(service=frozenset({0}), rest=frozenset({1, 2})).describe()
    assert text.startswith("the service under test on CPU 0;")
    assert text.endswith("PostgreSQL on CPU 1,2")


def test_pinning_is_off_unless_pin_is_given() -> None:
    assert parse_args([]).pin is False
    assert parse_args(["--pin"]).pin is True


@pytest.fixture
def family() -> Iterator[tuple[psutil.Process, int]]:
    with subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE) as proc:
        parent = psutil.Process(proc.pid)
        try:
            assert proc.stdout is not None
            yield parent, int(proc.stdout.readline())
        finally:
            for each in parent.children(recursive=True):
                each.kill()
            proc.kill()


@needs_two
def test_a_process_its_children_and_their_threads_are_pinned(
        family: tuple[psutil.Process, int]) -> None:
    parent, child = family
    one = frozenset({max(ALLOWED)})  # its thread runs: it started before the child
    assert pin(parent.pid, one) == 2
    threads = [t.id for t in parent.threads()]
    assert len(threads) == 2  # the one started before the pin too
    for tid in [*threads, child]:
        assert os.sched_getaffinity(tid) == one
    assert pin(parent.pid, ALLOWED) == 2
    assert os.sched_getaffinity(threads[1]) == ALLOWED


def test_a_process_that_is_gone_pins_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert pin(proc.pid, ALLOWED) == 0


def test_the_postmaster_is_found_by_its_pid_file(tmp_path: Path) -> None:
    assert postmaster_pid(tmp_path) is None
    (tmp_path / "postmaster.pid").write_text("4242\n/data\n1700000000\n5432\n")
    assert postmaster_pid(tmp_path) == 4242
    (tmp_path / "postmaster.pid").write_text("garbage\n")
    assert postmaster_pid(tmp_path) is None


@needs_two
def test_a_service_is_pinned_as_it_starts(tmp_path: Path) -> None:
    one = frozenset({max(ALLOWED)})
    port = free_port()
    service = ServiceProcess(ServiceSpec(
        name="floor", argv=[sys.executable, "-m", "bench.floor", "--port", str(port),
                            "--pbx-url", "http://127.0.0.1:9/vpbx/", "--api-key", "k",
                            "--salt", "s"],
        env=dict(os.environ), cwd=tmp_path, host="127.0.0.1", port=port,
        log_path=tmp_path / "floor.log", ready_timeout_s=60, cpus=one))
    try:
        service.start()
        assert service.pid is not None
        assert {os.sched_getaffinity(t.id) == one
                for t in psutil.Process(service.pid).threads()} == {True}
    finally:
        service.stop()

"""Where the benchmark's processes run, with ``--pin``: the service under test on a
core of its own.

In a deployment, the PBX (the load generator and the PBX emulator here) and
PostgreSQL are other machines. On the benchmark's one machine they are processes
beside the service, and the kernel moves every one of them from core to core as
it likes. ``python -m bench --pin`` pins the service under test (the floor, or
``mango-router serve`` with its automation child) to one core, and everything
else (the harness, the load generator, the PBX and CRM emulators, PostgreSQL) to
the others. The floor and the product get the same core, so their figures
compare like with like; the product's database work no longer takes the
service's core, but it shares the others with the load generator and the PBX
emulator, so what it costs them still shows.

It is not the default: on two cores the other core holds PostgreSQL and both
instruments. Measured on the 2-core VM at 1,000 calls/s, pinned, the index
mode's pooled p50 was 0.84, 2.13 and 1.01 ms in three runs (2.02 unpinned just
before), and its quiet rounds' p99 were 1.9-2x the floor's; but at 2,000/s that
other core saturated (the generator 9 ms late at p99) and the index mode lost 18
calls past their deadline. With four cores or more the others have room.

Affinity is inherited: a process started by a pinned one starts pinned. So the
harness pins itself to the others first, and each service is pinned as it
starts; PostgreSQL, which ``serve`` may start itself, is moved afterwards with
every process and thread it has.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["CpuLayout", "allowed_cpus", "pin", "postmaster_pid", "split_cpus"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CpuLayout:
    service: frozenset[int]  # the service under test
    rest: frozenset[int]  # everything else

    def describe(self) -> str:
        return (f"the service under test on CPU {_cpus(self.service)}; the load generator, "
                f"the emulators and PostgreSQL on CPU {_cpus(self.rest)}")


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def allowed_cpus() -> frozenset[int]:
    """The cores this process may run on; none where the OS keeps no affinity (macOS)."""
    if not hasattr(os, "sched_getaffinity"):
        return frozenset()
    return frozenset(os.sched_getaffinity(0))


def split_cpus(allowed: Iterable[int]) -> CpuLayout | None:
    """The first allowed core for the service, the others for the rest; None with one."""
    cpus = sorted(set(allowed))
    if len(cpus) < 2:
        return None
    return CpuLayout(service=frozenset(cpus[:1]), rest=frozenset(cpus[1:]))


def pin(pid: int, cpus: frozenset[int]) -> int:
    """Pin a process, its descendants and all their threads to ``cpus``; how many
    processes were pinned (one that ended meanwhile is skipped)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    pinned = 0
    for proc in procs:
        try:
            # the kernel keeps an affinity per thread (the main one's id is the
            # pid's): pinning a pid alone leaves the threads it started before
            for thread in proc.threads():
                with suppress(ProcessLookupError):  # a thread that ended meanwhile
                    os.sched_setaffinity(thread.id, cpus)
        except psutil.NoSuchProcess:
            continue
        pinned += 1
    return pinned


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the PostgreSQL server running on ``pgdata`` (``postmaster.pid``)."""
    try:
        first = (pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
    except OSError:
        return None
    try:
        return int(first)
    except ValueError:
        logger.warning("unreadable postmaster.pid", extra={"pgdata": str(pgdata)})
        return None

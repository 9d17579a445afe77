"""Background sessions at a low priority: the backends of a local server get the nice
(and, where the kernel groups by session, their group's), a remote server is left alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import asyncpg
import pytest

from lookup.db import create_pool
from lookup.priority import BackendPriority, local_socket


@pytest.mark.parametrize(("dsn", "local"), [
    ("postgresql://postgres:@/postgres?host=/tmp/router/pg", True),  # the embedded server
    ("postgresql:///router", True),  # libpq's default: the local socket
    ("postgresql://router@db.example:5432/router", False),
    ("postgresql://router@127.0.0.1/router", False),  # TCP: maybe another pid namespace
    ("postgresql://router@/router?host=db.example", False),
])
def test_only_a_server_behind_a_unix_socket_is_local(dsn: str, local: bool) -> None:
    assert local_socket(dsn) is local


def _autogroup_nice(pid: int) -> int | None:
    path = Path(f"/proc/{pid}/autogroup")
    if not path.exists():
        return None
    return int(path.read_text().split()[-1])  # "/autogroup-123 nice 19"


async def test_the_pools_backends_run_at_the_given_nice(dsn: str) -> None:
    assert local_socket(dsn)  # the tests' embedded server
    pool = await create_pool(dsn, min_size=2, max_size=2, migrate=False,
                             init=BackendPriority(dsn, nice=15))
    try:
        async with pool.acquire() as a, pool.acquire() as b:
            pids = {a.get_server_pid(), b.get_server_pid()}
        assert len(pids) == 2
        for pid in pids:
            assert os.getpriority(os.PRIO_PROCESS, pid) == 15
            assert _autogroup_nice(pid) in (15, None)
    finally:
        await pool.close()


async def test_other_sessions_keep_the_servers_priority(dsn: str) -> None:
    pool = await create_pool(dsn, min_size=1, max_size=1, migrate=False,
                             init=BackendPriority(dsn, nice=15))
    con = await asyncpg.connect(dsn)
    try:
        async with pool.acquire():
            pass
        pid = con.get_server_pid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == 0
        assert _autogroup_nice(pid) in (0, None)
    finally:
        await con.close()
        await pool.close()


async def test_a_remote_server_is_left_alone(dsn: str) -> None:
    init = BackendPriority("postgresql://router@db.example:5432/router", nice=15)
    con = await asyncpg.connect(dsn)
    try:
        await init(con)  # the local backend stands in for a remote one's pid
        assert os.getpriority(os.PRIO_PROCESS, con.get_server_pid()) == 0
    finally:
        await con.close()


class _Pooled:
    """A connection as a pooler hands it over: the pid it reports is not its backend's."""

    def __init__(self, con: asyncpg.Connection, reported: int) -> None:
        self._con, self._reported = con, reported

    def get_server_pid(self) -> int:
        return self._reported

    async def fetchrow(self, query: str) -> asyncpg.Record | None:
        return await self._con.fetchrow(query)


async def test_a_pid_that_is_not_the_sessions_backend_is_left_alone(dsn: str) -> None:
    other = await asyncpg.connect(dsn)  # a backend that another session uses
    con = await asyncpg.connect(dsn)
    try:
        pooled = _Pooled(con, reported=other.get_server_pid())
        await BackendPriority(dsn, nice=15)(cast(asyncpg.Connection, pooled))
        assert os.getpriority(os.PRIO_PROCESS, other.get_server_pid()) == 0
        assert os.getpriority(os.PRIO_PROCESS, con.get_server_pid()) == 0
    finally:
        await con.close()
        await other.close()

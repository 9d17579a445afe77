"""``mango-router demo`` routes a call on a database of its own and leaves the user's alone."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import asyncpg

from tests.cli.test_main import ENV, free_port
from tests.conftest import load_records
from tests.router.data import ALL


async def _lines_until(stream: asyncio.StreamReader, marker: str, *, within: float,
                       log: Path) -> str:
    seen: list[str] = []

    async def read() -> None:
        while (line := await stream.readline()):
            seen.append(line.decode())
            if marker in seen[-1]:
                return
        errors = (await asyncio.to_thread(log.read_text, errors="replace"))[-4000:]
        raise AssertionError(f"the demo stopped before {marker!r}:\n{''.join(seen)}"
                             f"\nits log's end:\n{errors}")

    await asyncio.wait_for(read(), within)
    return "".join(seen)


async def test_the_demo_routes_a_call_without_touching_the_users_database(
    dsn: str, db: asyncpg.Connection, tmp_path: Path,
) -> None:
    await load_records(dsn, ALL)
    before = await db.fetch("SELECT name, mango_api_url, megaplan_url FROM accounts ORDER BY id")
    clients = await db.fetchval("SELECT count(*) FROM clients")
    data_dir = tmp_path / "users-data"  # where an embedded database of the user's would live
    log = tmp_path / "demo.log"  # its log, shown when it stops early
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "router", "demo", "--clients", "200",
            env={**os.environ, **ENV, "DATABASE_URL": dsn, "ROUTER_DATA_DIR": str(data_dir),
                 "ROUTER_PORT": str(free_port()), "MEGAPLAN_RATE": "1000"},
            stdout=asyncio.subprocess.PIPE, stderr=err)
    try:
        assert proc.stdout is not None
        out = await _lines_until(proc.stdout, "Ctrl-C stops the demo.", within=90, log=log)
        routed = re.search(r"was routed to extension (\d+) \(expected (\d+)\)", out)
        assert routed is not None, out
        assert routed.group(1) == routed.group(2)
        made = re.search(r"made Megaplan client (\d+) «Новый \(", out)
        assert made is not None, out
        folder = re.search(r"a throwaway one in (\S+)", out)
        assert folder is not None, out
        assert await asyncio.to_thread(Path(folder.group(1)).is_dir)
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0
    assert not await asyncio.to_thread(Path(folder.group(1)).exists)  # the throwaway db is gone
    after = await db.fetch("SELECT name, mango_api_url, megaplan_url FROM accounts ORDER BY id")
    assert after == before
    assert await db.fetchval("SELECT count(*) FROM clients") == clients
    assert not await asyncio.to_thread(data_dir.exists)

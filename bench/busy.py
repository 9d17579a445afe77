"""``python -m bench.busy [--changes N]``: how soon an employee on a call is busy on
the other replica.

Two ``mango-router serve`` processes on one embedded PostgreSQL, as two replicas
behind a balancer, with ``skip_busy_responsible`` on and one client whose
responsibles are 101 and then 102. Each change posts a signed ``events/call`` leg
to the first replica (``Connected`` at 101, then its ``Disconnected``) and polls
the second's ``GET /route`` for the client's number until it answers 102 (101 is
busy), then 101 again (free). The time from the post to that answer is one
sample; it includes the post's own round trip and up to one poll (about a
millisecond each on loopback). Prints the figures and writes
``bench/out/busy.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession

from bench.auto import put_settings
from bench.command import output_folder, start_command
from bench.pbxproc import PbxProcess
from bench.procs import free_port
from bench.report import machine_description
from bench.runner import product_env
from bench.service import ServiceProcess, ServiceSpec, product_command, run_import
from bench.stats import summarize
from emulators.pbx import PbxCaller

__all__ = ["BusyConfig", "format_busy", "main", "run"]


HOST = "127.0.0.1"
API_KEY = "bench-busy-key"
API_SALT = "bench-busy-salt"
TOKEN = "bench-busy-operator"
NUMBER = "79160000030"  # the client's; its responsibles: 101, then 102
CALLER = "79990000001"  # who the employee at 101 talks to
_RECORDS = [
    {"type": "employee", "id": "1", "name": "Anna", "extension": "101", "active": True},
    {"type": "employee", "id": "2", "name": "Boris", "extension": "102", "active": True},
    {"type": "client", "id": "30", "kind": "human", "name": "Client", "phones": [NUMBER],
     "responsibles": [{"type": "employee", "id": "1"}, {"type": "employee", "id": "2"}]},
]
_POLL_S = 0.0005
_WITHIN_S = 5.0  # a change not seen by then is counted as lost
_SETTLE_S = 30.0  # for the setting to reach the second replica


_CHANGES = 200
_OUT = Path("bench/out")


@dataclass(frozen=True, slots=True, kw_only=True)
class BusyConfig:
    changes: int = _CHANGES  # half of them Connected, half Disconnected
    out_dir: Path = _OUT


def _env(data_dir: Path, dsn: str, **extra: str) -> dict[str, str]:
    return product_env(data_dir, DATABASE_URL=dsn, MANGO_API_KEY=API_KEY,
                       MANGO_API_SALT=API_SALT, ROUTER_ADMIN_TOKEN=TOKEN, **extra)


def _leg(i: int, state: str, seq: int) -> dict[str, Any]:
    """An abonent leg of an incoming call at extension 101."""
    return {"entry_id": f"busy-{i}", "call_id": f"busy-{i}-101", "timestamp": int(time.time()),
            "seq": seq, "call_state": state, "location": "abonent",
            "from": {"number": CALLER}, "to": {"extension": "101"}, "disconnect_reason": 0}


async def _extension(session: ClientSession, url: str) -> str | None:
    async with session.get(f"{url}/route", params={"number": NUMBER}) as resp:
        if resp.status != 200:  # not routed (every responsible busy), or not ready
            return None
        body: Any = orjson.loads(await resp.read())
        return str(body["extension"])


async def _until(session: ClientSession, url: str, extension: str, within: float
                 ) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await _extension(session, url) == extension:
            return True
        await asyncio.sleep(_POLL_S)
    return False


async def _measure(first: str, second: str, changes: int) -> dict[str, Any]:
    took: list[float] = []
    lost = 0
    async with ClientSession() as session:
        caller = PbxCaller(session, f"{first}/mango", api_key=API_KEY, salt=API_SALT)

        async def post(i: int) -> float:
            connected = i % 2 == 0
            leg = _leg(i // 2, "Connected" if connected else "Disconnected", 2 if connected else 4)
            sent = time.monotonic()
            status, text = await caller.post("events/call", leg)
            if status != 200:
                raise RuntimeError(f"events/call answered {status}: {text[:200]}")
            return sent

        # not measured: the setting has reached the second replica (it passes over a busy
        # 101), and both connections are open
        for i, extension in ((-2, "102"), (-1, "101")):
            await post(i)
            if not await _until(session, second, extension, _SETTLE_S):
                raise RuntimeError(f"the second replica never routed to {extension}")
        for i in range(changes):
            sent = await post(i)
            if await _until(session, second, "102" if i % 2 == 0 else "101", _WITHIN_S):
                took.append(time.monotonic() - sent)
            else:
                lost += 1
    s = summarize(took)
    return {"changes": changes, "seen": s.count, "lost": lost,
            "p50_ms": round(s.p50 * 1000, 2), "p99_ms": round(s.p99 * 1000, 2),
            "max_ms": round(s.max * 1000, 2)}


async def _run(cfg: BusyConfig, work: Path) -> dict[str, Any]:
    data_dir = (work / "db").resolve()
    (data_dir / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(data_dir / "run")  # the wheel's lock, read at import
    from lookup.embedded import ensure_embedded

    dsn = await asyncio.to_thread(ensure_embedded, data_dir, throwaway=True)
    data = work / "busy.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in _RECORDS) + b"\n")
    logs = cfg.out_dir / "logs"
    await asyncio.to_thread(run_import, data, env=_env(data_dir, dsn), cwd=work,
                            log_path=logs / "busy-import.log", timeout_s=300)
    with ExitStack() as stack:  # stopped last first, each whatever the others did
        pbx = PbxProcess(HOST, free_port(), api_key=API_KEY, salt=API_SALT)
        stack.callback(pbx.stop)
        replicas: list[ServiceProcess] = []
        for n in (1, 2):
            port = free_port()
            replica = ServiceProcess(ServiceSpec(
                name=f"mango-router serve (busy, replica {n})", argv=[*product_command(), "serve"],
                env=_env(data_dir, dsn, ROUTER_PORT=str(port), MANGO_API_URL=pbx.url),
                cwd=work, host=HOST, port=port, log_path=logs / f"serve-busy-{n}.log"))
            stack.callback(replica.stop)
            await asyncio.to_thread(replica.start)
            replicas.append(replica)
        first, second = (r.base_url for r in replicas)
        await asyncio.to_thread(put_settings, first, TOKEN, {"skip_busy_responsible": True})
        return await _measure(first, second, cfg.changes)


def run(cfg: BusyConfig, *, work_dir: Path | None = None) -> dict[str, Any]:
    started = time.monotonic()
    work = work_dir or Path(tempfile.mkdtemp(prefix="mango-busy-"))
    if work_dir is None:  # after the embedded server's own exit handler (registered later)
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    figures = asyncio.run(_run(cfg, work))
    results = {"machine": machine_description(), "busy": figures,
               "elapsed_s": round(time.monotonic() - started, 1)}
    (output_folder(cfg.out_dir) / "busy.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    return results


def format_busy(results: dict[str, Any]) -> str:
    b = results["busy"]
    return (f"machine: {results['machine']}  run: {results['elapsed_s']} s\n"
            f"busy on the other replica: {b['seen']} of {b['changes']} changes seen "
            f"({b['lost']} not within {_WITHIN_S:g} s); p50 {b['p50_ms']} ms, "
            f"p99 {b['p99_ms']} ms, max {b['max_ms']} ms")


def parse_args(argv: Sequence[str] | None = None) -> BusyConfig:
    p = argparse.ArgumentParser(prog="python -m bench.busy",
                                description="How soon a leg posted to one replica makes its "
                                            "employee busy on another.")
    p.add_argument("--changes", type=int, default=_CHANGES,
                   help="legs posted, Connected and Disconnected in turn (default 200)")
    p.add_argument("--out", type=Path, default=_OUT,
                   help="output directory (default bench/out)")
    a = p.parse_args(argv)
    if a.changes < 2:
        p.error("--changes: at least 2")
    return BusyConfig(changes=a.changes, out_dir=a.out)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    start_command()
    results = run(cfg)
    sys.stdout.write(format_busy(results) + "\n")
    return 0 if results["busy"]["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The CRM emulator (``emulators/megaplan.py``) in its own process, answering the
per-call ``callRoute`` of the ``crm`` mode after an injected latency, over the
same data the service imported."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import socket
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.procs import ChildProcess, new_event_loop, serve_pipe

__all__ = ["CrmProcess", "crm_main", "crm_unavailable"]

logger = logging.getLogger(__name__)


def crm_unavailable() -> str | None:
    """Why the CRM emulator cannot be used, or None when it can."""
    try:
        megaplan = importlib.import_module("emulators.megaplan")
    except ImportError as exc:
        return f"emulators.megaplan is not there yet ({exc})"
    if not hasattr(megaplan, "run_megaplan_emulator"):
        return "emulators.megaplan has no run_megaplan_emulator"
    return None


def crm_main(
    conn: Connection, host: str, port: int, data_file: str, clients: int, seed: int,
    latency_ms: float,
) -> None:
    logging.basicConfig(level=logging.WARNING)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        try:
            runner.run(_serve(conn, host, port, data_file, clients, seed, latency_ms))
        except Exception as exc:
            logger.exception("CRM emulator failed")
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _serve(
    conn: Connection, host: str, port: int, data_file: str, clients: int, seed: int,
    latency_ms: float,
) -> None:
    run_megaplan_emulator = importlib.import_module("emulators.megaplan").run_megaplan_emulator

    kwargs: dict[str, Any] = {
        "host": host, "port": port, "clients": clients, "seed": seed,
        "latency_ms": latency_ms, "data_file": Path(data_file),
    }
    accepted = inspect.signature(run_megaplan_emulator).parameters
    task = asyncio.ensure_future(
        run_megaplan_emulator(**{k: v for k, v in kwargs.items() if k in accepted})
    )
    deadline = time.monotonic() + 120
    while not _listening(host, port):
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the CRM emulator returned before it listened")
        if time.monotonic() > deadline:
            raise RuntimeError("the CRM emulator did not listen within 120 s")
        await asyncio.sleep(0.1)
    async def handle(msg: tuple[Any, ...]) -> Any:
        raise ValueError(f"unknown command {msg[0]!r}")

    conn.send(("ok", port))
    try:
        pipe = asyncio.ensure_future(serve_pipe(conn, handle))
        await asyncio.wait({task, pipe}, return_when=asyncio.FIRST_COMPLETED)
        pipe.cancel()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class CrmProcess:
    def __init__(
        self, host: str, port: int, *, data_file: Path, clients: int, seed: int,
        latency_ms: float,
    ) -> None:
        self.host, self.port = host, port
        self._child = ChildProcess(
            "crm-emulator", crm_main, host, port, str(data_file), clients, seed, latency_ms
        )
        try:
            self._child.receive(150)
        except BaseException:
            self._child.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._child.stop()

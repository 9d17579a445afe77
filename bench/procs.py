"""Helper processes of the benchmark (load generator, PBX and CRM emulators), each a
spawned Python process driven over a pipe; and free loopback ports for them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import socket
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["ChildError", "ChildProcess", "free_port", "new_event_loop", "serve_pipe"]

logger = logging.getLogger(__name__)


class ChildError(RuntimeError):
    """A helper process failed, answered an error, or did not answer in time."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's when it is there (it is a dependency of the product), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def serve_pipe(
    conn: Connection, handle: Callable[[tuple[Any, ...]], Awaitable[Any]]
) -> None:
    """In a child: answer each message from the parent with ("ok", await handle(msg)) or
    ("error", text), until ("stop",) or the parent goes away.

    The pipe is read and written by a thread in blocking mode: an event loop's reader
    would make the descriptor non-blocking, and a large answer would then be cut short.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            msg = await loop.run_in_executor(None, conn.recv)
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        try:
            reply: tuple[str, Any] = ("ok", await handle(msg))
        except Exception as exc:
            logger.exception("%s failed", msg[0])
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            await loop.run_in_executor(None, conn.send, reply)
        except OSError:
            return


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ChildProcess:
    """A spawned process running ``target(conn, *args)``; it answers each message with
    ("ok", value) or ("error", text) and exits on ("stop",)."""

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.name = name
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=target, args=(child, *args), name=name, daemon=True)
        self._proc.start()
        child.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def call(self, message: tuple[Any, ...], timeout: float) -> Any:
        self._conn.send(message)
        return self.receive(timeout)

    def receive(self, timeout: float) -> Any:
        if not self._conn.poll(timeout):
            raise ChildError(f"{self.name}: no answer within {timeout:.0f} s")
        try:
            status, value = self._conn.recv()
        except EOFError as exc:
            raise ChildError(f"{self.name}: the process died") from exc
        if status != "ok":
            raise ChildError(f"{self.name}: {value}")
        return value

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))
            self._proc.join(timeout)
        if self._proc.is_alive():
            logger.warning("%s did not stop; terminating pid %s", self.name, self._proc.pid)
            self._proc.terminate()
            self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout)
        self._conn.close()



"""The PBX emulator in its own process: it records the routes the service (or the
floor relay) sends, and hands them over when drained. ``emulators.pbx``'s state
(the same signature check and record) behind ``bench.pbxserver``'s lean front."""

from __future__ import annotations

import asyncio
import logging
from multiprocessing.connection import Connection
from typing import Any

from bench.pbxserver import serve_pbx
from bench.procs import ChildProcess, new_event_loop, serve_pipe
from emulators.pbx import PbxState

__all__ = ["PbxProcess", "pbx_main"]

logger = logging.getLogger(__name__)

Route = tuple[str, str, float]  # call_id, to_number, received_at (monotonic)


def pbx_main(conn: Connection, host: str, port: int, api_key: str, salt: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(conn, host, port, PbxState(api_key=api_key, salt=salt)))


async def _serve(conn: Connection, host: str, port: int, state: PbxState) -> None:
    async def handle(msg: tuple[Any, ...]) -> Any:
        if msg[0] == "drain":
            routes: list[Route] = [
                (str(c.payload.get("call_id")), str(c.payload.get("to_number")), c.received_at)
                for c in state.commands
                if c.command == "commands/route"
            ]
            state.commands.clear()
            return routes, state.bad_signatures
        if msg[0] == "count":
            return sum(1 for c in state.commands if c.command == "commands/route")
        if msg[0] == "users":  # what ``config/users/request`` answers (the CRM sync asks)
            state.users = list(msg[1])
            return len(state.users)
        raise ValueError(f"unknown command {msg[0]!r}")

    async with serve_pbx(state, host, port):
        conn.send(("ok", port))
        await serve_pipe(conn, handle)


class PbxProcess:
    def __init__(self, host: str, port: int, *, api_key: str, salt: str) -> None:
        self.host, self.port = host, port
        self._child = ChildProcess("pbx-emulator", pbx_main, host, port, api_key, salt)
        try:
            self._child.receive(30)
        except BaseException:
            self._child.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/vpbx/"

    def drain(self) -> tuple[list[Route], int]:
        """Routes received since the last drain, and bad signatures so far."""
        routes, bad = self._child.call(("drain",), 30)
        return list(routes), int(bad)

    def count(self) -> int:
        return int(self._child.call(("count",), 10))

    def set_users(self, users: list[dict[str, Any]]) -> None:
        """The PBX's users from now on (the CRM sync matches employees to them by e-mail)."""
        self._child.call(("users", users), 30)

    def stop(self) -> None:
        self._child.stop()

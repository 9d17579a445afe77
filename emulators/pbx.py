"""A MANGO OFFICE VPBX emulator: a real HTTP server speaking the VPBX API.

It receives the service's signed commands (``commands/route``,
``config/users/request``) under ``/vpbx/``, records them with their arrival
time, and can answer slowly, with an HTTP error, a rate limit or a result
other than 1000. With ``callback_url`` set it behaves like the real PBX after
an accepted route: it posts ``result/route`` and the new ``abonent`` leg that
carries our ``command_id``. ``PbxCaller`` is the other half: it posts signed
notifications to the service exactly as the PBX does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout, web

from mango.signing import sign, verify

logger = logging.getLogger(__name__)

__all__ = [
    "PbxBehaviour",
    "PbxCaller",
    "PbxState",
    "RecordedCommand",
    "create_pbx_app",
    "run_pbx_emulator",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedCommand:
    command: str
    payload: dict[str, Any]
    received_at: float  # time.monotonic(): one clock for every process on the machine


@dataclass(slots=True, kw_only=True)
class PbxBehaviour:
    """How the emulator answers commands; tests change it while it runs."""

    delay_ms: float = 0.0
    http_status: int = 200
    result: int = 1000
    retry_after: int | None = None


@dataclass(slots=True, kw_only=True)
class PbxState:
    api_key: str = "demo"
    salt: str = "demo"
    users: list[dict[str, Any]] = field(default_factory=list)
    behaviour: PbxBehaviour = field(default_factory=PbxBehaviour)
    callback_url: str | None = None  # the service's integration URL, e.g. http://h:p/mango
    commands: list[RecordedCommand] = field(default_factory=list)
    bad_signatures: int = 0
    known_calls: dict[str, str] = field(default_factory=dict)  # call_id -> entry_id
    _route_waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def routes(self) -> list[RecordedCommand]:
        return [c for c in self.commands if c.command == "commands/route"]

    async def wait_routes(self, count: int, within: float = 5.0) -> list[RecordedCommand]:
        """Wait until ``count`` routes arrived (or ``within`` seconds passed); return them all."""
        deadline = time.monotonic() + within
        while len(self.routes()) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._route_waiters.append(fut)
            with suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await fut
        return self.routes()

    def take(
        self, command: str, key: object, sign_: object, raw: object
    ) -> tuple[int, int, dict[str, Any] | None]:
        """Check one signed command's form fields and record it if it is valid:
        (HTTP status, VPBX result code, the command's JSON or None)."""
        if not (isinstance(key, str) and isinstance(sign_, str) and isinstance(raw, str)):
            return 400, 3101, None  # bad request format
        if key != self.api_key or not verify(key, raw, self.salt, sign_):
            self.bad_signatures += 1
            return 401, 3102, None  # wrong key or sign
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return 400, 3101, None
        if not isinstance(payload, dict):
            return 400, 3101, None
        self._record(command, payload)
        return 200, 1000, payload

    def _record(self, command: str, payload: dict[str, Any]) -> None:
        self.commands.append(
            RecordedCommand(command=command, payload=payload, received_at=time.monotonic())
        )
        if command == "commands/route":
            waiters, self._route_waiters = self._route_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)


STATE = web.AppKey("pbx_state", PbxState)
SESSION = web.AppKey("pbx_session", ClientSession)
TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("pbx_tasks")


def create_pbx_app(state: PbxState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app[TASKS] = set()
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_post("/vpbx/{command:.+}", _handle_command)
    return app


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = ClientSession(timeout=ClientTimeout(total=5))
    yield
    tasks: set[asyncio.Task[None]] = app[TASKS]
    for task in list(tasks):
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    await app[SESSION].close()


async def _handle_command(request: web.Request) -> web.Response:
    state = request.app[STATE]
    command = request.match_info["command"]
    form = await request.post()
    status, result, payload = state.take(
        command, form.get("vpbx_api_key"), form.get("sign"), form.get("json"))
    if payload is None:
        return web.json_response({"result": result}, status=status)
    logger.info("command received", extra={"command": command, "payload": payload})
    behaviour = state.behaviour
    if behaviour.delay_ms:
        await asyncio.sleep(behaviour.delay_ms / 1000)
    if behaviour.http_status != 200:
        headers = {}
        if behaviour.retry_after is not None:
            headers["Retry-After"] = str(behaviour.retry_after)
        if 300 <= behaviour.http_status < 400:  # e.g. a maintenance page the API moved to
            headers["Location"] = "/maintenance"
        return web.Response(status=behaviour.http_status, headers=headers, text="emulated error")
    if command == "config/users/request":
        return web.json_response({"result": 1000, "users": state.users})
    if command == "commands/route" and behaviour.result == 1000 and state.callback_url:
        task = asyncio.create_task(_after_route(request.app, payload))
        request.app[TASKS].add(task)
        task.add_done_callback(request.app[TASKS].discard)
    return web.json_response({"result": behaviour.result})


async def _after_route(app: web.Application, command: Mapping[str, Any]) -> None:
    """What the PBX does after an accepted route: the final result, then the new leg."""
    state = app[STATE]
    assert state.callback_url is not None
    caller = PbxCaller(app[SESSION], state.callback_url, api_key=state.api_key, salt=state.salt)
    # the real PBX knows which entry a leg belongs to; the emulator learns it from PbxCaller
    command_id = str(command.get("command_id", ""))
    try:
        await caller.post("result/route", {"command_id": command_id, "result": 1000})
        await caller.post(
            "events/call",
            {
                "entry_id": state.known_calls.get(str(command.get("call_id", "")), ""),
                "call_id": f"routed-{command_id}",
                "command_id": command_id,
                "timestamp": int(time.time()),
                "seq": 100,
                "call_state": "Appeared",
                "location": "abonent",
                "from": {"number": "", "taken_from_call_id": command.get("call_id", "")},
                "to": {"extension": command.get("to_number", "")},
            },
        )
    except Exception:  # the emulator must not die because the service is away
        logger.warning("callback after route failed", exc_info=True)


class PbxCaller:
    """Posts signed notifications to the service's integration URL, as the PBX does."""

    __slots__ = ("_api_key", "_base", "_salt", "_session", "_state")

    def __init__(
        self,
        session: ClientSession,
        base_url: str,
        *,
        api_key: str,
        salt: str,
        state: PbxState | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._salt = salt
        self._state = state  # when set, legs posted here are known to that emulator

    def form(self, payload: Mapping[str, Any] | str) -> dict[str, str]:
        raw = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        return {
            "vpbx_api_key": self._api_key,
            "sign": sign(self._api_key, raw, self._salt),
            "json": raw,
        }

    async def post(self, kind: str, payload: Mapping[str, Any] | str) -> tuple[int, str]:
        if self._state is not None and kind == "events/call" and not isinstance(payload, str):
            self._state.known_calls[str(payload.get("call_id"))] = str(payload.get("entry_id"))
        async with self._session.post(f"{self._base}/{kind}", data=self.form(payload)) as resp:
            return resp.status, await resp.text()


async def run_pbx_emulator(host: str, port: int, state: PbxState) -> None:
    """Serve until cancelled (``mango-router emulate pbx``)."""
    runner = web.AppRunner(create_pbx_app(state), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info("PBX emulator on http://%s:%d/vpbx/ (key %r)", host, port, state.api_key)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

"""The PBX emulator's lean HTTP/1.1 front, for the benchmark.

On two cores every process of the harness takes CPU from the service it measures.
Behind aiohttp's server the emulator cost about 170 µs of CPU per route command, a
fifth of a core at 1,200 calls/s, as much as the load generator. This front reads
requests straight off the socket (``Content-Length`` bodies, keep-alive) and hands
each command's form to ``PbxState.take``, the same check and record as
``emulators.pbx``, then answers its JSON result. A request it cannot read gets a
400 and the connection is closed. The emulator's fault modes (``PbxBehaviour``)
and its after-route callbacks are not played here: the benchmark uses neither.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import cast

import orjson

from bench.httphead import HeadError, read_head
from emulators.pbx import PbxState
from mango.form import parse_form

__all__ = ["serve_pbx"]

logger = logging.getLogger(__name__)

_MAX_HEAD = 16 * 1024
_MAX_BODY = 1024 * 1024
_PREFIX = b"/vpbx/"


def _response(status: int, body: bytes, *, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{connection}\r\n").encode() + body


class _PbxProtocol(asyncio.Protocol):
    __slots__ = ("_buf", "_closed", "_live", "_state", "_transport")

    def __init__(self, state: PbxState, live: set[asyncio.Transport]) -> None:
        self._state = state
        self._live = live
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._live.add(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._transport is not None:
            self._live.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        try:
            while not self._closed and self._one_request():
                pass
        except HeadError as exc:
            self._refuse(str(exc))

    def _one_request(self) -> bool:
        """Answer the first complete request in the buffer; False if there is none yet."""
        buf = self._buf
        head = read_head(buf, limit=_MAX_HEAD)
        if head is None:
            return False
        parts = head.first_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise HeadError("bad request line")
        method, target, version = parts
        length = max(head.length, 0)
        if length > _MAX_BODY:
            raise HeadError("body too large")
        close = head.close if head.close is not None else version == b"HTTP/1.0"
        start = head.body_start
        if len(buf) < start + length:
            return False
        body = bytes(buf[start:start + length])
        del buf[:start + length]
        status, answer = self._answer(method, target, body)
        assert self._transport is not None
        self._transport.write(_response(status, answer, close=close))
        if close:
            self._close()
        return True

    def _answer(self, method: bytes, target: bytes, body: bytes) -> tuple[int, bytes]:
        if method != b"POST" or not target.startswith(_PREFIX):
            return 404, b'{"error": "not found"}'
        command = target[len(_PREFIX):].decode(errors="replace")
        try:
            form = parse_form(body)
        except ValueError:
            return 400, b'{"result": 3101}'
        state = self._state
        status, result, payload = state.take(
            command, form.get("vpbx_api_key"), form.get("sign"), form.get("json"))
        if payload is not None and command == "config/users/request":
            return status, orjson.dumps({"result": result, "users": state.users})
        return status, b'{"result": %d}' % result

    def _refuse(self, reason: str) -> None:
        logger.warning("unreadable request: %s", reason)
        self._buf.clear()
        if self._transport is not None and not self._closed:
            self._transport.write(_response(400, orjson.dumps({"error": reason}), close=True))
            self._close()

    def _close(self) -> None:
        assert self._transport is not None
        self._closed = True
        self._transport.close()  # connection_lost follows and forgets it


@asynccontextmanager
async def serve_pbx(state: PbxState, host: str, port: int) -> AsyncIterator[asyncio.Server]:
    """Listen on ``host:port`` (0: any free port) for the service's commands; on exit
    close the listener and every connection still open."""
    live: set[asyncio.Transport] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _PbxProtocol(state, live), host, port,
                                      backlog=1024)
    try:
        yield server
    finally:
        server.close()
        for transport in list(live):
            transport.abort()
        await server.wait_closed()

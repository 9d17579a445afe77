"""A lean HTTP/1.1 keep-alive client for the load generator.

On two cores the generator must not be the limit: requests are built once as raw
bytes and written to pooled loopback connections; the answer is read far enough to
know its status and reuse the connection. Only ``Content-Length`` bodies are
understood (what aiohttp servers send for complete responses).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlencode

from bench.httphead import HeadError, read_head

__all__ = ["HttpError", "RawPool", "build_get", "build_post_form"]

_MAX_HEADER = 16 * 1024


class HttpError(Exception):
    """The server answered something this client does not understand, or went away."""


def build_post_form(host: str, port: int, path: str, fields: Mapping[str, str]) -> bytes:
    body = urlencode(fields).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def build_get(host: str, port: int, path_and_query: str) -> bytes:
    return f"GET {path_and_query} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time, its answer read by the
    protocol's callbacks (no task, no stream reader per request)."""

    __slots__ = ("_buf", "_pool", "_transport", "_waiter")

    def __init__(self, pool: RawPool) -> None:
        self._pool = pool
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    @property
    def alive(self) -> bool:
        return self._transport is not None

    def send(self, request: bytes, waiter: asyncio.Future[tuple[int, bytes]]) -> None:
        assert self._waiter is None
        self._waiter = waiter
        if self._transport is None:
            self._fail(HttpError("connection closed"))
        else:
            self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._fail(HttpError("an answer nobody asked for"))
            return
        self._buf += data
        try:
            answer = self._answer()
        except HttpError as exc:
            self._fail(exc)
            return
        if answer is None:
            return
        status, body, keep = answer
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))
        if not keep or self._buf:  # surplus bytes: the connection is out of step
            self._fail(HttpError("connection not reusable"))
            return
        self._pool._release(self)

    def _answer(self) -> tuple[int, bytes, bool] | None:
        """(status, body, keep) once a whole answer is buffered, else None."""
        buf = self._buf
        try:
            head = read_head(buf, limit=_MAX_HEADER)
        except HeadError as exc:
            raise HttpError(str(exc)) from None
        if head is None:
            return None
        try:
            status = int(head.first_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"bad status line {head.first_line!r}") from None
        if head.length < 0:
            raise HttpError("answer without Content-Length")
        start, end = head.body_start, head.body_start + head.length
        if len(buf) < end:
            return None
        body = bytes(buf[start:end])
        del buf[:end]
        return status, body, not head.close

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HttpError(f"connection lost: {exc!r}"))

    def _fail(self, exc: HttpError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self._transport is not None:
            transport, self._transport = self._transport, None
            transport.abort()
            self._pool._lost(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class RawPool:
    """Up to ``limit`` persistent connections to one loopback server; one request each
    at a time. Requests beyond the limit queue for a free connection.

    ``request`` returns a future at once: the caller may await it or add a callback,
    so an open-loop generator needs no task per request. ``close_stale`` closes the
    connections idle for more than ``max_idle`` seconds: the server may be about to
    close them (aiohttp's keep-alive timeout is 75 s), and a request written into
    that close would be lost. It is the caller's to call, between steps: hundreds of
    connections closed at once cost the server a burst of work. ``opened`` counts
    the connections made, for the caller's report."""

    def __init__(self, host: str, port: int, *, limit: int = 512,
                 max_idle: float = 30.0) -> None:
        self._host = host
        self._port = port
        self._limit = limit
        self._max_idle = max_idle
        # idle since when; insertion order is age order, the newest last
        self._idle: dict[_Conn, float] = {}
        self.opened = 0
        self._open = 0  # connections open or being opened
        self._connects = 0  # of which being opened
        self._queued: deque[tuple[bytes, asyncio.Future[tuple[int, bytes]]]] = deque()
        self._all: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop = asyncio.get_running_loop()

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send ``data`` on a free connection (or once one is free): (status, body)."""
        waiter: asyncio.Future[tuple[int, bytes]] = self._loop.create_future()
        if self._idle:
            self._idle.popitem()[0].send(data, waiter)
        else:
            self._queued.append((data, waiter))
            self._dispatch()
        return waiter

    def close_stale(self) -> int:
        """Close the connections idle longer than ``max_idle``; how many."""
        limit = self._loop.time() - self._max_idle
        stale = []
        for conn, since in self._idle.items():  # oldest first
            if since >= limit:
                break
            stale.append(conn)
        for conn in stale:
            self._forget(conn)  # first: its connection_lost then finds it gone
            conn.close()
        return len(stale)

    def _dispatch(self) -> None:
        """Open a connection for each queued request no connect is under way for,
        within the limit. Called whenever a request queues or a connection goes."""
        want = len(self._queued) - self._connects
        while want > 0 and self._open < self._limit and not self._closed:
            want -= 1
            self._open += 1
            self._connects += 1
            task = self._loop.create_task(self._connect())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        conn: _Conn | None = None
        error: Exception | None = None
        try:
            _, conn = await self._loop.create_connection(
                lambda: _Conn(self), self._host, self._port)
        except asyncio.CancelledError:
            self._connects -= 1
            self._open -= 1
            raise
        except Exception as exc:
            error = exc
        self._connects -= 1
        if conn is not None and conn.alive:
            self.opened += 1
            self._all.add(conn)
            self._release(conn)
            return
        self._open -= 1  # never opened, or lost before it was ever used
        # fail one waiter per failed connect, so nothing waits on a server that is gone
        while self._queued:
            _, waiter = self._queued.popleft()
            if not waiter.done():
                waiter.set_exception(HttpError(
                    f"connect {self._host}:{self._port}: {error or 'closed at once'}"))
                break
        self._dispatch()

    def _release(self, conn: _Conn) -> None:
        """``conn`` is free: give it the oldest queued request still wanted, or keep it."""
        while self._queued:
            data, waiter = self._queued.popleft()
            if not waiter.done():  # not cancelled meanwhile
                conn.send(data, waiter)
                return
        self._idle[conn] = self._loop.time()

    def _lost(self, conn: _Conn) -> None:
        if conn not in self._all:  # lost before _connect took it: counted there
            return
        self._forget(conn)
        self._dispatch()  # requests queued behind it still get a connection

    def _forget(self, conn: _Conn) -> None:
        self._all.discard(conn)
        self._idle.pop(conn, None)
        self._open -= 1

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for _, waiter in self._queued:
            waiter.cancel()
        self._queued.clear()
        conns = list(self._all)
        self._all.clear()
        self._idle.clear()
        for conn in conns:
            conn.close()
        await asyncio.sleep(0)  # let the transports close

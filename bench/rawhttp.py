"""A lean HTTP/1.1 keep-alive client for the load generator.

On two cores the generator must not be the limit: requests are built once as raw
bytes and written to pooled loopback connections; the answer is read far enough to
know its status and reuse the connection. Only ``Content-Length`` bodies are
understood (what aiohttp servers send for complete responses).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from urllib.parse import urlencode

__all__ = ["HttpError", "RawPool", "build_get", "build_post_form"]

logger = logging.getLogger(__name__)

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


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; (status, body, keep the connection)."""
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise HttpError(f"no answer: {exc!r}") from exc
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise HttpError(f"bad status line {lines[0]!r}") from exc
        length = -1
        keep = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value.strip())
            elif lname == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif lname == b"transfer-encoding":
                raise HttpError("chunked answers are not supported")
        if length < 0:
            raise HttpError("answer without Content-Length")
        body = await self.reader.readexactly(length) if length else b""
        return status, body, keep

    def close(self) -> None:
        self.writer.close()


class RawPool:
    """Up to ``limit`` persistent connections to one loopback server; one request each
    at a time. Requests beyond the limit wait for a free connection."""

    def __init__(self, host: str, port: int, *, limit: int = 512) -> None:
        self._host = host
        self._port = port
        self._idle: list[_Conn] = []
        self._open = 0
        self._slots = asyncio.Semaphore(limit)
        self._all: set[_Conn] = set()

    async def request(self, data: bytes) -> tuple[int, bytes]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                status, body, keep = await conn.exchange(data)
            except BaseException:
                self._drop(conn)
                raise
            if keep:
                self._idle.append(conn)
            else:
                self._drop(conn)
            return status, body

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self._host, self._port, limit=_MAX_HEADER * 4
            )
        except OSError as exc:
            raise HttpError(f"connect {self._host}:{self._port}: {exc}") from exc
        conn = _Conn(reader, writer)
        self._all.add(conn)
        return conn

    def _drop(self, conn: _Conn) -> None:
        self._all.discard(conn)
        conn.close()

    async def close(self) -> None:
        conns = list(self._all)
        self._all.clear()
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            try:
                await conn.writer.wait_closed()
            except OSError:  # the peer had already gone
                logger.debug("close", exc_info=True)

"""The VPBX API's lean HTTP client against real loopback servers: framing, reuse, TLS, errors."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from router.pbx_http import HttpError, HttpPool

# request bytes -> raw answer: bytes, or pieces written 20 ms apart (None: hang)
Answer = Callable[[bytes], Awaitable[bytes | list[bytes] | None]]


class RawServer:
    """A loopback server that answers each request with crafted bytes, and counts them."""

    def __init__(self, answer: Answer, *, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after  # close each connection after one answer, unannounced
        self.requests: list[bytes] = []
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/vpbx/commands/route"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = await self.answer(request)
                if answer is None:
                    await asyncio.sleep(10)
                    return
                pieces = answer if isinstance(answer, list) else [answer]
                for i, piece in enumerate(pieces):
                    if i:
                        await asyncio.sleep(0.02)
                    writer.write(piece)
                    await writer.drain()
                whole = b"".join(pieces)
                if self.close_after or b"connection: close" in whole.lower() \
                        or whole.startswith(b"HTTP/1.0"):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def pool() -> AsyncIterator[HttpPool]:
    http = HttpPool()
    yield http
    await http.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def make(answer: Answer, *, close_after: bool = False) -> RawServer:
        server = RawServer(answer, close_after=close_after)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


def fixed(raw: bytes | list[bytes]) -> Answer:
    async def answer(_: bytes) -> bytes | list[bytes]:
        return raw
    return answer


OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
      b'{"result": 1000}')


async def test_a_form_is_posted_with_its_length_and_host_and_the_answer_read(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]]
) -> None:
    server = await raw_server(fixed(OK))
    status, body = await pool.post_form(server.url, b"a=1&b=2", within=2.0)
    assert (status, body) == (200, b'{"result": 1000}')
    request = server.requests[0]
    assert request.startswith(b"POST /vpbx/commands/route HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{URL(server.url).port}\r\n".encode() in request
    assert b"Content-Type: application/x-www-form-urlencoded\r\n" in request
    assert request.endswith(b"Content-Length: 7\r\n\r\na=1&b=2")


async def test_a_kept_alive_connection_is_reused(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]]
) -> None:
    server = await raw_server(fixed(OK))
    for _ in range(5):
        assert (await pool.post_form(server.url, b"x=1", within=2.0))[0] == 200
    assert server.connections == 1


async def test_connection_close_is_honoured_and_the_next_request_reconnects(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]]
) -> None:
    server = await raw_server(fixed(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"))
    for _ in range(3):
        assert await pool.post_form(server.url, b"x=1", within=2.0) == (200, b"{}")
    assert server.connections == 3


@pytest.mark.parametrize(("answer", "body"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5;ext=1\r\n{\"res\r\n0b\r\nult\": 1000}\r\n0\r\nX-Trailer: 1\r\n\r\n", b'{"result": 1000}'),
    (b"HTTP/1.0 200 OK\r\n\r\n{\"result\": 1000}", b'{"result": 1000}'),  # to the close
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", b"{}"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
])
async def test_every_answer_framing_is_read_whole(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]],
    answer: bytes, body: bytes,
) -> None:
    server = await raw_server(fixed(answer))
    status, got = await pool.post_form(server.url, b"x=1", within=2.0)
    assert got == body
    assert status in (200, 204)
    # and the connection state after it is right for a second request
    assert (await pool.post_form(server.url, b"x=1", within=2.0))[1] == body


async def test_an_answer_read_to_the_close_is_read_whole_however_it_arrives(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]]
) -> None:
    server = await raw_server(fixed([b"HTTP/1.0 200 OK\r\n\r\n", b'{"result":', b" 1000}"]))
    assert await pool.post_form(server.url, b"x=1", within=2.0) == (200, b'{"result": 1000}')


@pytest.mark.parametrize("extra", [
    [OK + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"],  # more than was asked for
    [OK, b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"],  # unasked, later
])
async def test_a_connection_with_unasked_for_bytes_is_not_reused(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]], extra: list[bytes]
) -> None:
    calls = 0

    async def answer(_: bytes) -> bytes | list[bytes]:
        nonlocal calls
        calls += 1
        return extra if calls == 1 else OK

    server = await raw_server(answer)
    assert await pool.post_form(server.url, b"x=1", within=2.0) == (200, b'{"result": 1000}')
    await asyncio.sleep(0.05)  # the late piece arrives while the connection is idle
    assert await pool.post_form(server.url, b"x=1", within=2.0) == (200, b'{"result": 1000}')
    assert server.connections == 2


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 70_000 + b"\r\n",
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
async def test_an_answer_that_is_not_http_is_an_error(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]], answer: bytes
) -> None:
    server = await raw_server(fixed(answer))
    with pytest.raises(HttpError):
        await pool.post_form(server.url, b"x=1", within=2.0)


async def test_an_answer_cut_short_is_an_error(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]]
) -> None:
    server = await raw_server(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                                    b"Connection: close\r\n\r\n{}"))
    with pytest.raises(asyncio.IncompleteReadError):
        await pool.post_form(server.url, b"x=1", within=2.0)


async def test_a_silent_server_times_out_and_its_connection_is_not_reused(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]]
) -> None:
    calls = 0

    async def first_hangs(_: bytes) -> bytes | list[bytes] | None:
        nonlocal calls
        calls += 1
        return None if calls == 1 else OK

    server = await raw_server(first_hangs)
    with pytest.raises(TimeoutError):
        await pool.post_form(server.url, b"x=1", within=0.2)
    assert (await pool.post_form(server.url, b"x=1", within=2.0))[0] == 200
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]]
) -> None:
    server = await raw_server(fixed(OK), close_after=True)  # a keep-alive timeout, unsaid
    for _ in range(3):
        assert (await pool.post_form(server.url, b"x=1", within=2.0))[0] == 200
        await asyncio.sleep(0.05)  # the close reaches the client while it is idle
    assert server.connections == 3


async def test_a_refused_connection_is_an_error(
    pool: HttpPool, raw_server: Callable[..., Awaitable[RawServer]]
) -> None:
    server = await raw_server(fixed(OK))
    await server.close()
    with pytest.raises(ConnectionRefusedError):
        await pool.post_form(server.url, b"x=1", within=2.0)


async def test_https_checks_the_certificate_and_posts_over_tls() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"result": 1000, "got": (await request.post())["a"]})

    app = web.Application()
    app.router.add_post("/vpbx/commands/route", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_ctx)
    url = f"https://127.0.0.1:{server.port}/vpbx/commands/route"
    try:
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        trusting = HttpPool(ssl_context=client_ctx)
        try:
            status, body = await trusting.post_form(url, b"a=%D0%BF", within=5.0)
        finally:
            await trusting.close()
        assert status == 200
        assert body == b'{"result": 1000, "got": "\\u043f"}'
        default = HttpPool()  # the system's CAs do not know this one
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                await default.post_form(url, b"a=1", within=5.0)
        finally:
            await default.close()
    finally:
        await server.close()


async def test_a_url_that_is_not_http_is_refused(pool: HttpPool) -> None:
    with pytest.raises(HttpError, match="not an http"):
        await pool.post_form("ftp://example.test/x", b"", within=1.0)

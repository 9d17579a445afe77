"""The load generator's client: answers matched to requests over few kept-alive
connections, requests past the limit queued, and a bad answer or a dead server an
error for its request alone, never a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.procs import free_port
from bench.rawhttp import HttpError, RawPool, build_get, build_post_form


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, set[int]]]:
    peers: set[int] = set()

    async def echo(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        await asyncio.sleep(float(request.query.get("wait", "0")))
        form = await request.post()
        return web.Response(text=f"{request.query.get('n', '')}|{form.get('v', '')}")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv, peers
    await srv.close()


async def test_each_answer_reaches_its_own_request_over_at_most_limit_connections(
    server: tuple[TestServer, set[int]],
) -> None:
    srv, peers = server
    assert srv.port is not None
    pool = RawPool("127.0.0.1", srv.port, limit=3)
    try:
        answers = await asyncio.gather(*(
            pool.request(build_get("127.0.0.1", srv.port, f"/echo?n={i}&wait=0.01"))
            for i in range(20)))
        posted = await pool.request(
            build_post_form("127.0.0.1", srv.port, "/echo?n=p", {"v": "a b&c"}))
    finally:
        await pool.close()
    assert answers == [(200, f"{i}|".encode()) for i in range(20)]
    assert posted == (200, b"p|a b&c")
    assert len(peers) <= 3  # the other 17 waited for a free connection


async def _raw_server(answer: bytes, *, then_close: bool = False) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
                if then_close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize(("answer", "error"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "chunked"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "without Content-Length"),
    (b"NONSENSE\r\n\r\n", "status line"),
])
async def test_an_answer_it_cannot_read_fails_that_request(answer: bytes, error: str) -> None:
    bad = await _raw_server(answer)
    port = bad.sockets[0].getsockname()[1]
    pool = RawPool("127.0.0.1", port)
    try:
        with pytest.raises(HttpError, match=error):
            await asyncio.wait_for(pool.request(build_get("127.0.0.1", port, "/")), 2)
    finally:
        await pool.close()
        bad.close()
        await bad.wait_closed()


async def test_requests_queued_past_the_limit_end_when_the_server_drops_each_connection(
) -> None:
    # keep-alive answers, but the server hangs up after each: every request queued
    # behind a connection must still get one of its own (or an error), never wait on
    drop = await _raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", then_close=True)
    port = drop.sockets[0].getsockname()[1]
    pool = RawPool("127.0.0.1", port, limit=2)
    try:
        got = await asyncio.wait_for(asyncio.gather(
            *(pool.request(build_get("127.0.0.1", port, "/")) for _ in range(12)),
            return_exceptions=True), 5)
    finally:
        await pool.close()
        drop.close()
        await drop.wait_closed()
    assert all(g == (200, b"ok") or isinstance(g, HttpError) for g in got)
    assert got.count((200, b"ok")) >= 2


async def test_a_server_that_is_not_there_is_an_error_not_a_hang() -> None:
    port = free_port()
    pool = RawPool("127.0.0.1", port)
    try:
        with pytest.raises(HttpError, match="connect"):
            await asyncio.wait_for(pool.request(build_get("127.0.0.1", port, "/")), 2)
    finally:
        await pool.close()


@pytest.mark.parametrize(("max_idle", "stale", "connections"), [(30.0, 0, 1), (0.05, 1, 2)])
async def test_close_stale_closes_the_connections_idle_longer_than_max_idle(
    server: tuple[TestServer, set[int]], max_idle: float, stale: int, connections: int,
) -> None:
    # a server closes a keep-alive connection idle too long (aiohttp: 75 s); a request
    # written into that close would be lost, so the pool gives it up first
    srv, peers = server
    assert srv.port is not None
    pool = RawPool("127.0.0.1", srv.port, max_idle=max_idle)
    try:
        first = await pool.request(build_get("127.0.0.1", srv.port, "/echo?n=1"))
        await asyncio.sleep(0.1)
        closed = pool.close_stale()
        second = await pool.request(build_get("127.0.0.1", srv.port, "/echo?n=2"))
    finally:
        await pool.close()
    assert (first, second) == ((200, b"1|"), (200, b"2|"))
    assert closed == stale
    assert len(peers) == connections
    assert pool.opened == connections


async def test_a_stale_connection_is_still_used_until_close_stale_is_called(
    server: tuple[TestServer, set[int]],
) -> None:
    # closing hundreds at once is a burst of work for the server: never mid-step
    srv, peers = server
    assert srv.port is not None
    pool = RawPool("127.0.0.1", srv.port, max_idle=0.01)
    try:
        await pool.request(build_get("127.0.0.1", srv.port, "/echo?n=1"))
        await asyncio.sleep(0.05)
        await pool.request(build_get("127.0.0.1", srv.port, "/echo?n=2"))
    finally:
        await pool.close()
    assert len(peers) == pool.opened == 1


async def test_close_stale_closes_only_the_oldest_idle_and_frees_their_places(
    server: tuple[TestServer, set[int]],
) -> None:
    srv, peers = server
    assert srv.port is not None
    pool = RawPool("127.0.0.1", srv.port, limit=2, max_idle=0.1)
    try:
        await asyncio.gather(*(  # two connections, both idle after
            pool.request(build_get("127.0.0.1", srv.port, f"/echo?n={i}&wait=0.02"))
            for i in range(2)))
        await asyncio.sleep(0.15)
        await pool.request(build_get("127.0.0.1", srv.port, "/echo?n=fresh"))  # one reused
        closed = pool.close_stale()
        # the other one's place is free again: with limit 2, two more at once still go
        answers = await asyncio.wait_for(asyncio.gather(*(
            pool.request(build_get("127.0.0.1", srv.port, f"/echo?n={i}&wait=0.02"))
            for i in range(2))), 2)
    finally:
        await pool.close()
    assert closed == 1
    assert answers == [(200, b"0|"), (200, b"1|")]
    assert len(peers) == pool.opened == 3

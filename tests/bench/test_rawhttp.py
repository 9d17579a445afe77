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


async def test_an_answer_without_content_length_fails_that_request_only() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client hangs up
        writer.close()

    bad = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = bad.sockets[0].getsockname()[1]
    pool = RawPool("127.0.0.1", port)
    try:
        with pytest.raises(HttpError, match="chunked"):
            await asyncio.wait_for(pool.request(build_get("127.0.0.1", port, "/")), 2)
    finally:
        await pool.close()
        bad.close()
        await bad.wait_closed()


async def test_a_server_that_is_not_there_is_an_error_not_a_hang() -> None:
    port = free_port()
    pool = RawPool("127.0.0.1", port)
    try:
        with pytest.raises(HttpError, match="connect"):
            await asyncio.wait_for(pool.request(build_get("127.0.0.1", port, "/")), 2)
    finally:
        await pool.close()

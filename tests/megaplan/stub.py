"""A scripted stand-in CRM on loopback, for tests that need exact wire control.

(``aioresponses`` 0.7.9 cannot build responses for aiohttp 3.14, so narrow
client tests use a real tiny server instead.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer

Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


async def token_handler(request: web.Request) -> web.Response:
    return web.json_response({"access_token": "tok-123", "expires_in": 172800})


@asynccontextmanager
async def serve_stub(routes: list[Route]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/api/v3/auth/access_token", token_handler)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()

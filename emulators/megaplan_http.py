"""HTTP plumbing shared by the emulator's handlers: state key, query, envelopes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from emulators.megaplan_render import error_envelope
from emulators.megaplan_store import MegaplanState

__all__ = [
    "STATE_KEY",
    "ApiError",
    "api_errors_middleware",
    "json_query",
    "json_response",
    "read_json_body",
]

STATE_KEY = web.AppKey("megaplan_state", MegaplanState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Answered as a v3 error envelope (``meta.errors``)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


@web.middleware
async def api_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return json_response(error_envelope(err.status, err.message, err.field), err.status)


def json_query(request: web.Request) -> dict[str, Any]:
    """v3 passes GET parameters as one URL-encoded JSON object: ``?{"limit":100}``."""
    raw = unquote(request.rel_url.raw_query_string)
    if not raw.startswith("{"):
        return {}
    try:
        query = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "query is not valid JSON") from None
    if not isinstance(query, dict):
        raise ApiError(400, "query is not a JSON object")
    return query


async def read_json_body(request: web.Request) -> Any:
    """The body of a write, recorded as it arrived (even when refused later)."""
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
        request.app[STATE_KEY].record_write(request.method, request.path, raw.decode("replace"))
        raise ApiError(400, "body is not valid JSON") from None
    request.app[STATE_KEY].record_write(request.method, request.path, body)
    return body

"""Reading a JSON object from a request body, refusing anything else with a 400."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

__all__ = ["json_object"]


def _bad(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=orjson.dumps({"error": reason}).decode(),
                              content_type="application/json")


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body: Any = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise _bad("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad("body must be a JSON object")
    return body

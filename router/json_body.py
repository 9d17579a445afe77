"""Reading a JSON object from a request body, refusing anything else with a 400."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from router.errors import ApiError

__all__ = ["json_object"]


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body: Any = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ApiError(400, "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    return body

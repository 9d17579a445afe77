"""``GET /api/calls`` and ``GET /api/calls/{entry_id}``: what happened to a call.

Read by ``lookup.calls`` from the journal and the decision record: the call's
events in ``seq`` order, the routing decision (with the PBX's later
``result/route``), and the CRM actions planned for it. The list is newest first
by the calls' start, found through the ``calls`` table (one row per call).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from lookup.calls import find_call, recent_calls
from lookup.phones import phone_key
from router.auth import admin_account
from router.errors import ApiError
from router.keys import POOL

__all__ = ["setup_calls_api"]

_MAX_LIMIT = 500


def setup_calls_api(app: web.Application) -> None:
    app.router.add_get("/api/calls", list_calls)
    # the PBX's entry ids are base64, "/" included: the id is the rest of the path,
    # written as it is or with "/" escaped as %2F (aiohttp's default pattern with "/")
    app.router.add_get("/api/calls/{entry_id:[^{}]+}", get_call)


async def list_calls(request: web.Request) -> web.Response:
    account = admin_account(request)
    limit = _limit(request.query.get("limit", "50"))
    number: str | None = None
    if "number" in request.query:
        key = phone_key(request.query["number"], account.settings.default_region)
        if key is None:
            raise ApiError(400, "number is not a phone number")
        number = str(key)
    calls = await recent_calls(request.app[POOL], account.id, number=number,
                               limit=limit)
    return web.json_response(calls, dumps=_dumps)


async def get_call(request: web.Request) -> web.Response:
    account = admin_account(request)
    found = await find_call(request.app[POOL], account.id, request.match_info["entry_id"])
    if found is None:
        raise ApiError(404, "no such call")
    return web.json_response(found, dumps=_dumps)


def _limit(raw: str) -> int:
    # a few ASCII digits: int() refuses "²" (a digit to isdigit) and 5,000-digit strings
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= _MAX_LIMIT):
        raise ApiError(400, f"limit must be 1 to {_MAX_LIMIT}")
    return int(raw)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, default=str).decode()

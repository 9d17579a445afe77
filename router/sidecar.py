"""The sidecar lookup, health and readiness (PROTOCOLS §4)."""

from __future__ import annotations

from aiohttp import web

from lookup.db import ping
from lookup.phones import phone_key
from router.auth import account_from_query
from router.errors import ApiError
from router.keys import INDEXES, KEEPER, POOL, ROUTER

__all__ = ["setup_sidecar"]

_PING_WAIT = 1.0


def setup_sidecar(app: web.Application) -> None:
    app.router.add_get("/route", handle_route)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)


async def handle_route(request: web.Request) -> web.Response:
    account = account_from_query(request)
    number = request.query.get("number", "")
    key = phone_key(number, account.settings.default_region)
    if key is None:  # the number stays in the answer, as in every /route answer
        raise ApiError(400, "not a phone number", extra={"number": number})
    decision = await request.app[ROUTER].decide(account, key)
    if decision is None:
        raise ApiError(503, "index not loaded", extra={"number": str(key)})
    return web.json_response(decision.to_json(), status=200 if decision.routed else 404)


async def handle_healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def handle_readyz(request: web.Request) -> web.Response:
    if not request.app[KEEPER].ready.is_set() or not request.app[INDEXES].loaded:
        return web.json_response({"status": "index not loaded"}, status=503)
    try:
        await ping(request.app[POOL], within=_PING_WAIT)
    except Exception as exc:
        return web.json_response({"status": f"database unreachable: {type(exc).__name__}"},
                                 status=503)
    return web.json_response({"status": "ready", "phones": request.app[INDEXES].phones()})

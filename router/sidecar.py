"""The sidecar lookup, health and readiness (PROTOCOLS §4)."""

from __future__ import annotations

from aiohttp import web

from lookup.accounts import Account
from lookup.phones import phone_key
from router.keys import ACCOUNTS, INDEXES, KEEPER, POOL, ROUTER

__all__ = ["account_from_query", "setup_sidecar"]


def setup_sidecar(app: web.Application) -> None:
    app.router.add_get("/route", handle_route)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)


def account_from_query(request: web.Request) -> Account:
    name = request.query.get("account", "default")
    account = request.app[ACCOUNTS].by_name(name)
    if account is None:
        raise web.HTTPBadRequest(text=f'{{"error": "unknown account {name!r}"}}',
                                 content_type="application/json")
    return account


async def handle_route(request: web.Request) -> web.Response:
    account = account_from_query(request)
    number = request.query.get("number", "")
    key = phone_key(number, account.settings.default_region)
    if key is None:
        return web.json_response({"number": number, "error": "not a phone number"}, status=400)
    decision = await request.app[ROUTER].decide(account, key)
    if decision is None:
        return web.json_response({"number": str(key), "error": "index not loaded"}, status=503)
    return web.json_response(decision.to_json(), status=200 if decision.routed else 404)


async def handle_healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def handle_readyz(request: web.Request) -> web.Response:
    if not request.app[KEEPER].ready.is_set() or not request.app[INDEXES].loaded:
        return web.json_response({"status": "index not loaded"}, status=503)
    try:
        async with request.app[POOL].acquire(timeout=1) as con:
            await con.fetchval("SELECT 1", timeout=1)
    except Exception as exc:
        return web.json_response({"status": f"database unreachable: {type(exc).__name__}"},
                                 status=503)
    return web.json_response({"status": "ready", "phones": request.app[INDEXES].phones()})

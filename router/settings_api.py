"""``GET/PUT /api/settings``: an account's integration settings (PROTOCOLS §5)."""

from __future__ import annotations

import dataclasses

import orjson
from aiohttp import web

from lookup.accounts import save_settings
from lookup.settings import DealTarget, Settings, SettingsError, merge_update
from router.auth import require_account_access
from router.json_body import json_object
from router.keys import ACCOUNTS, POOL
from router.sidecar import account_from_query

__all__ = ["setup_settings_api"]


def setup_settings_api(app: web.Application) -> None:
    app.router.add_get("/api/settings", get_settings)
    app.router.add_put("/api/settings", put_settings)


async def get_settings(request: web.Request) -> web.Response:
    account = account_from_query(request)
    require_account_access(request, account)
    return web.json_response(account.settings.to_json())


async def put_settings(request: web.Request) -> web.Response:
    account = account_from_query(request)
    require_account_access(request, account)
    body = await json_object(request)
    async with request.app[POOL].acquire() as con, con.transaction():
        # Merge into the stored settings under a row lock, not into this replica's
        # copy: two PUTs of different keys, here or on two replicas, both stay.
        stored = await con.fetchval(
            "SELECT settings FROM accounts WHERE id = $1 FOR UPDATE", account.id)
        if stored is None:
            return web.json_response({"error": "unknown account"}, status=400)
        current = Settings.from_stored(orjson.loads(stored))
        employees = {r["crm_id"] for r in await con.fetch(
            "SELECT crm_id FROM employees WHERE account_id = $1 AND active", account.id)}
        states = {(r["program_id"], r["crm_id"]) for r in await con.fetch(
            "SELECT program_id, crm_id FROM program_states WHERE account_id = $1", account.id)}

        def known_deal(deal: DealTarget) -> bool:
            return (deal.program_id, deal.state_id) in states

        try:
            merged = merge_update(current, body, known_employees=employees.__contains__,
                                  known_deal=known_deal)
        except SettingsError as exc:
            return web.json_response({"error": str(exc), "field": exc.field}, status=400)
        await save_settings(con, account.id, merged)
    request.app[ACCOUNTS].update(dataclasses.replace(account, settings=merged))
    return web.json_response(merged.to_json())

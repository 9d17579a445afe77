"""``GET/PUT /api/settings``: an account's integration settings (PROTOCOLS §5)."""

from __future__ import annotations

from aiohttp import web

from lookup.accounts import update_settings
from lookup.settings import SettingsError
from router.auth import admin_account
from router.errors import ApiError
from router.json_body import json_object
from router.keys import ACCOUNTS, POOL

__all__ = ["setup_settings_api"]


def setup_settings_api(app: web.Application) -> None:
    app.router.add_get("/api/settings", get_settings)
    app.router.add_put("/api/settings", put_settings)


async def get_settings(request: web.Request) -> web.Response:
    account = admin_account(request)
    return web.json_response(account.settings.to_json())


async def put_settings(request: web.Request) -> web.Response:
    account = admin_account(request)
    body = await json_object(request)
    try:
        async with request.app[POOL].acquire() as con:
            merged = await update_settings(con, account.id, body)
    except SettingsError as exc:
        raise ApiError(400, str(exc), exc.field) from None
    if merged is None:  # removed since this replica last heard of it
        raise ApiError(400, "unknown account")
    request.app[ACCOUNTS].update_settings(account.id, merged)
    return web.json_response(merged.to_json())

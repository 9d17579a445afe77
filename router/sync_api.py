"""Sync status and hand-set extensions over HTTP (admin token: operator's or the account's).

``GET /api/accounts/{name}/sync``: the last full and incremental passes, their
counts, the lag and the last error. ``PUT /api/employees/{id}/extension``
with ``{"extension": "105"}`` sets an employee's extension by hand (it then
wins over the PBX match); ``{"extension": null}`` hands it back to the match.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from router.auth import admin_account
from router.errors import ApiError
from router.json_body import json_object
from router.keys import POOL
from sync.account import megaplan_credentials
from sync.extensions import EXTENSION_RE, set_extension
from sync.store import read_state, status_json

__all__ = ["setup_sync_api"]


def setup_sync_api(app: web.Application) -> None:
    app.router.add_get("/api/accounts/{name}/sync", get_sync_status)
    app.router.add_put("/api/employees/{id}/extension", put_extension)


async def get_sync_status(request: web.Request) -> web.Response:
    account = admin_account(request, name=request.match_info["name"])
    row = await read_state(request.app[POOL], account.id)
    return web.json_response(status_json(account.name, megaplan_credentials(account) is not None,
                                         row, datetime.now(UTC)))


async def put_extension(request: web.Request) -> web.Response:
    account = admin_account(request)
    body = await json_object(request)
    if "extension" not in body:
        raise ApiError(400, 'body must be {"extension": "101" or null}', "extension")
    extension = body["extension"]
    if extension is not None and not (isinstance(extension, str)
                                      and EXTENSION_RE.match(extension)):
        raise ApiError(400, "extension must be 1-16 digits or null", "extension")
    employee = await set_extension(request.app[POOL], account.id, request.match_info["id"],
                                   extension)
    if employee is None:
        raise ApiError(404, "unknown employee")
    return web.json_response(employee)

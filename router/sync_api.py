"""Sync status and hand-set extensions over HTTP (admin token: operator's or the account's).

``GET /api/accounts/{name}/sync``: the last full and incremental passes, their
counts, the lag and the last error. ``PUT /api/employees/{id}/extension``
with ``{"extension": "105"}`` sets an employee's extension by hand (it then
wins over the PBX match); ``{"extension": null}`` hands it back to the match.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from router.auth import require_account_access
from router.json_body import json_object
from router.keys import ACCOUNTS, POOL
from router.sidecar import account_from_query
from sync.account import megaplan_credentials
from sync.extensions import EXTENSION_RE, set_extension
from sync.store import read_state, status_json

__all__ = ["setup_sync_api"]


def setup_sync_api(app: web.Application) -> None:
    app.router.add_get("/api/accounts/{name}/sync", get_sync_status)
    app.router.add_put("/api/employees/{id}/extension", put_extension)


async def get_sync_status(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    account = request.app[ACCOUNTS].by_name(name)
    if account is None:
        return web.json_response({"error": f"unknown account {name!r}"}, status=404)
    require_account_access(request, account)
    row = await read_state(request.app[POOL], account.id)
    return web.json_response(status_json(name, megaplan_credentials(account) is not None, row,
                                         datetime.now(UTC)))


async def put_extension(request: web.Request) -> web.Response:
    account = account_from_query(request)
    require_account_access(request, account)
    body = await json_object(request)
    if "extension" not in body:
        return web.json_response({"error": 'body must be {"extension": "101" or null}',
                                  "field": "extension"}, status=400)
    extension = body["extension"]
    if extension is not None and not (isinstance(extension, str)
                                      and EXTENSION_RE.match(extension)):
        return web.json_response({"error": "extension must be 1-16 digits or null",
                                  "field": "extension"}, status=400)
    employee = await set_extension(request.app[POOL], account.id, request.match_info["id"],
                                   extension)
    if employee is None:
        return web.json_response({"error": "unknown employee"}, status=404)
    return web.json_response(employee)

"""``GET /api/health[?account=NAME]``: whether the account's PBX API and CRM answered
lately (admin token: the operator's or the account's own).

For each of ``pbx`` and ``crm``: the last success, the last failure and its
reason, and ``ok`` (the last success is newer than the last failure; null when
never contacted), as every replica wrote them to ``service_health``
(``router.health``: a few seconds behind at most). ``crm`` is null, with
``crm_reason``, for an account without a CRM. Not about this process (that is
``/readyz``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from lookup.health import service_health
from router.auth import admin_account
from router.keys import POOL
from sync.account import megaplan_credentials

__all__ = ["setup_health_api"]


def setup_health_api(app: web.Application) -> None:
    app.router.add_get("/api/health", get_health)


async def get_health(request: web.Request) -> web.Response:
    account = admin_account(request)
    health = await service_health(request.app[POOL], account.id)
    body: dict[str, Any] = {
        "account": account.name,
        "as_of": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        **health.to_json(crm_configured=megaplan_credentials(account) is not None),
    }
    return web.json_response(body, dumps=lambda obj: orjson.dumps(obj).decode())

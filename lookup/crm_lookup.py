"""The routing decision made by asking the CRM per call (``callRoute``).

What peer integrations do; here only as the benchmark's ``crm`` baseline
(``ROUTER_LOOKUP=crm``). It shares the app's client session.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout

from lookup.rules import NO_CLIENT, Decision

logger = logging.getLogger(__name__)

__all__ = ["CrmLookup"]

_TIMEOUT = ClientTimeout(total=5)


class CrmLookup:
    __slots__ = ("_base", "_lock", "_password", "_session", "_token", "_user")

    def __init__(self, session: ClientSession, base_url: str, user: str, password: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._user = user
        self._password = password
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def _auth(self) -> str:
        async with self._lock:
            if self._token is None:
                async with self._session.post(
                    f"{self._base}/api/v3/auth/access_token",
                    data={"username": self._user, "password": self._password,
                          "grant_type": "password"},
                    timeout=_TIMEOUT,
                ) as resp:
                    body: Any = orjson.loads(await resp.read())
                    self._token = str(body["access_token"])
            return self._token

    async def decide(self, key: int) -> Decision:
        number = str(key)
        for _ in range(2):
            token = await self._auth()
            async with self._session.get(
                f"{self._base}/api/v3/callRoute", params={"phone": number},
                headers={"Authorization": f"Bearer {token}"}, timeout=_TIMEOUT,
            ) as resp:
                if resp.status == 401:
                    self._token = None
                    continue
                body: Any = orjson.loads(await resp.read())
            data = body.get("data") or {}
            extension = data.get("extension")
            client = (data.get("client") or {}).get("id")
            employee = (data.get("employee") or {}).get("id")
            reason = data.get("reason") if not extension else None
            if reason is None and not extension:
                reason = NO_CLIENT
            return Decision(number, reason, client, employee, extension)
        return Decision(number, NO_CLIENT)

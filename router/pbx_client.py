"""Signed commands to the MANGO OFFICE VPBX API (one client session per app)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout

from lookup.accounts import Account
from router.signing import sign

logger = logging.getLogger(__name__)

__all__ = ["CommandResult", "PbxClient"]

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True, slots=True)
class CommandResult:
    http_status: int | None  # None: no answer (timeout or connection error)
    result: int | None  # the VPBX result code; 1000 = accepted
    error: str | None = None
    body: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.http_status == 200 and self.result == 1000


class PbxClient:
    __slots__ = ("_session",)

    def __init__(self, session: ClientSession) -> None:
        self._session = session

    async def command(
        self, account: Account, command: str, payload: dict[str, Any], *, within: float
    ) -> CommandResult:
        raw = orjson.dumps(payload).decode()
        form = urlencode({
            "vpbx_api_key": account.mango_api_key,
            "sign": sign(account.mango_api_key, raw, account.mango_api_salt),
            "json": raw,
        }).encode()
        base = account.mango_api_url if account.mango_api_url.endswith("/") else (
            account.mango_api_url + "/"
        )
        try:
            async with self._session.post(
                base + command, data=form, headers=_FORM, timeout=ClientTimeout(total=within)
            ) as resp:
                text = await resp.read()
                body: Any = None
                try:
                    body = orjson.loads(text) if text else None
                except orjson.JSONDecodeError:
                    body = None
                result = body.get("result") if isinstance(body, dict) else None
                return CommandResult(
                    resp.status,
                    result if isinstance(result, int) else None,
                    body=body if isinstance(body, dict) else None,
                )
        except TimeoutError:
            return CommandResult(None, None, "timeout")
        except (ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return CommandResult(None, None, type(exc).__name__)

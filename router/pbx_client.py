"""Signed commands to the MANGO OFFICE VPBX API, over router.pbx_http's lean client."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from lookup.accounts import Account
from router.pbx_http import HttpError, HttpPool
from router.signing import sign

logger = logging.getLogger(__name__)

__all__ = ["CommandResult", "PbxClient"]



@dataclass(frozen=True, slots=True)
class CommandResult:
    http_status: int | None  # None: no answer (timeout or connection error)
    result: int | None  # the VPBX result code; 1000 = accepted
    error: str | None = None
    body: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.http_status == 200 and self.result == 1000


def _escape(text: str) -> bytes:
    """Form-encode by escaping every byte: valid for any text, and done in C
    (``urlencode`` works character by character in Python; it showed in profiles)."""
    data = text.encode()
    return ("%" + data.hex("%")).upper().encode() if data else b""


class PbxClient:
    __slots__ = ("_http",)

    def __init__(self, http: HttpPool) -> None:
        self._http = http

    async def command(
        self, account: Account, command: str, payload: dict[str, Any], *, within: float
    ) -> CommandResult:
        raw = orjson.dumps(payload).decode()
        form = b"vpbx_api_key=%s&sign=%s&json=%s" % (
            _escape(account.mango_api_key),
            _escape(sign(account.mango_api_key, raw, account.mango_api_salt)),
            _escape(raw),
        )
        try:
            base = account.mango_api_url
            status, text = await self._http.post_form(
                (base if base.endswith("/") else base + "/") + command, form, within=within)
        except TimeoutError:
            return CommandResult(None, None, "timeout")
        except (HttpError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            return CommandResult(None, None, type(exc).__name__)
        except Exception as exc:  # a failed command must never take its caller down
            logger.exception("PBX command failed unexpectedly", extra={"command": command})
            return CommandResult(None, None, type(exc).__name__)
        body: Any = None
        try:
            body = orjson.loads(text) if text else None
        except orjson.JSONDecodeError:
            body = None
        result = body.get("result") if isinstance(body, dict) else None
        return CommandResult(
            status,
            result if isinstance(result, int) else None,
            body=body if isinstance(body, dict) else None,
        )

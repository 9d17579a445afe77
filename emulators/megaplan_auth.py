"""The emulator's OAuth-style password grant and its bearer-token check."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from emulators.megaplan_http import STATE_KEY, ApiError, json_response
from emulators.megaplan_store import TOKEN_TTL_S

__all__ = ["AUTH_PATH", "access_token", "bearer_middleware"]

AUTH_PATH = "/api/v3/auth/access_token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _credentials(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise ApiError(400, "body is not valid JSON") from None
        return body if isinstance(body, dict) else {}
    form = await request.post()  # urlencoded or multipart
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def access_token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    form = await _credentials(request)
    if form.get("grant_type") != "password":
        raise ApiError(400, "grant_type must be password", "grant_type")
    user_ok = hmac.compare_digest(str(form.get("username", "")), state.username)
    pass_ok = hmac.compare_digest(str(form.get("password", "")), state.password)
    if not (user_ok and pass_ok):
        raise ApiError(state.bad_credentials_status, "Invalid username or password")
    return json_response(
        {
            "access_token": state.issue_token(),
            "expires_in": TOKEN_TTL_S,
            "token_type": "bearer",
            "scope": None,
            "refresh_token": secrets.token_urlsafe(24),  # not accepted as a bearer
        }
    )


@web.middleware
async def bearer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path != AUTH_PATH:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "Authorization required")
        if not request.app[STATE_KEY].token_valid(token.strip()):
            raise ApiError(401, "Access token is invalid or expired")
    return await handler(request)

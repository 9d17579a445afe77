"""``GET /settings``: the settings page for people.

A static page that talks to ``/api/settings``. Signing in posts a token to
``/settings/session``, which checks it against the account and keeps it in an
HttpOnly, SameSite=Strict cookie that ``router.auth`` accepts like a bearer
token, so the page needs no session store shared between replicas.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from router.auth import SESSION_COOKIE, token_allows
from router.errors import ApiError
from router.keys import ACCOUNTS

__all__ = ["setup_settings_page"]

_PAGE = resources.files("router").joinpath("static/settings.html").read_bytes()
_WEEK = 7 * 24 * 3600


def setup_settings_page(app: web.Application) -> None:
    app.router.add_get("/settings", settings_page)
    app.router.add_post("/settings/session", sign_in)


async def settings_page(_request: web.Request) -> web.Response:
    return web.Response(body=_PAGE, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"})


async def sign_in(request: web.Request) -> web.Response:
    try:
        form = await request.post()
    except (ValueError, LookupError, BadHttpMessage):  # broken multipart, unknown charset
        raise ApiError(400, "body is not a form") from None
    token, name = form.get("token"), form.get("account") or "default"
    if not isinstance(token, str) or not token or not isinstance(name, str):
        raise ApiError(400, "token is required")
    account = request.app[ACCOUNTS].by_name(name)
    if account is None or not token_allows(request, account, token):
        raise ApiError(403, "this token does not open this account")
    response = web.json_response({"account": name})
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict", max_age=_WEEK,
                        path="/")
    return response

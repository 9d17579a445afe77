"""Signing in and out, picking the account (the operator), and the language switch.

Sign-in attempts are limited per client address (``limits``' moving window, in
this process's memory: each replica counts its own, so N replicas allow N times
the rate; the tokens are long random strings, so this only keeps guessing slow
and the log quiet).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp_session import get_session
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from router.keys import ACCOUNTS
from router.pages.i18n import LANGUAGE_COOKIE, LANGUAGES
from router.pages.render import render, signed_in
from router.pages.session import (
    Viewer,
    form_is_text,
    open_session,
    page,
    set_sign_in_csrf,
    sign_in_csrf,
    sign_in_csrf_matches,
    who_has,
)

logger = logging.getLogger(__name__)

__all__ = ["SIGN_IN_LIMIT", "SignInLimiter", "setup_signin"]

SIGN_IN_LIMIT = RateLimitItemPerMinute(10)


class SignInLimiter:
    """At most ``SIGN_IN_LIMIT`` sign-in attempts a minute from one address."""

    __slots__ = ("_limiter",)

    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def attempt(self, address: str) -> bool:
        return self._limiter.hit(SIGN_IN_LIMIT, "signin", address)


SIGN_IN_LIMITER = web.AppKey("sign_in_limiter", SignInLimiter)


def setup_signin(app: web.Application) -> None:
    app[SIGN_IN_LIMITER] = SignInLimiter()
    app.router.add_get("/", home)
    app.router.add_get("/signin", sign_in_form)
    app.router.add_post("/signin", page(sign_in))
    app.router.add_post("/signout", signed_in(sign_out))
    app.router.add_post("/account", signed_in(pick_account))
    app.router.add_get("/lang/{lang}", switch_language)


def _next(raw: object) -> str:
    """Where to go after signing in: a path of this site only, never another host."""
    if isinstance(raw, str) and raw.startswith("/") and not raw.startswith("//") and \
            not urlsplit(raw).netloc and "\\" not in raw:
        return raw
    return "/overview"


async def home(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/overview")


def _sign_in_page(request: web.Request, *, next_path: str, error: str | None,
                  status: int = 200) -> web.Response:
    token = sign_in_csrf(request)
    response = render(request, "signin.html", {"csrf": token, "next": next_path,
                                               "error": error}, who=None, status=status)
    set_sign_in_csrf(response, token)
    return response


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    return _sign_in_page(request, next_path=_next(request.query.get("next")), error=None)


async def sign_in(request: web.Request) -> web.StreamResponse:
    address = request.remote or "unknown"
    if not request.app[SIGN_IN_LIMITER].attempt(address):
        logger.warning("sign-in attempts over the limit", extra={"address": address})
        response = _sign_in_page(request, next_path="/overview", error="limit", status=429)
        response.headers["Retry-After"] = "60"
        return response
    try:
        form = await request.post()
    except (ValueError, LookupError, BadHttpMessage):  # broken multipart, bad charset
        return render(request, "refused.html", {"reason": "form"}, who=None, status=400)
    if not form_is_text(form):
        return render(request, "refused.html", {"reason": "form"}, who=None, status=400)
    if not sign_in_csrf_matches(request, form.get("csrf")):
        return _sign_in_page(request, next_path="/overview", error="csrf", status=403)
    token = form.get("token")
    operator, account = who_has(request, token) if isinstance(token, str) and token else (
        False, None)
    if account is None:
        if operator:
            error = "no_accounts"
        else:
            error = "token"
            logger.info("sign-in refused: unknown token", extra={"address": address})
        return _sign_in_page(request, next_path=_next(form.get("next")), error=error,
                             status=403 if error == "token" else 409)
    await open_session(request, operator=operator, account=account)
    logger.info("signed in to the pages", extra={
        "account": account.name, "operator": operator, "address": address})
    raise web.HTTPSeeOther(_next(form.get("next")))


async def sign_out(request: web.Request, _who: Viewer) -> web.StreamResponse:
    (await get_session(request)).invalidate()
    raise web.HTTPSeeOther("/signin")


async def pick_account(request: web.Request, who: Viewer) -> web.StreamResponse:
    """The operator looks at another account; an account's own token cannot."""
    form = await request.post()
    name = form.get("account")
    if not who.operator or not isinstance(name, str) or request.app[ACCOUNTS].by_name(
            name) is None:
        return render(request, "refused.html", {"reason": "account"}, who=who, status=403)
    (await get_session(request))["account"] = name
    raise web.HTTPSeeOther(_next(form.get("next")))


async def switch_language(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    response = web.HTTPSeeOther(_next(request.query.get("next")))
    if lang in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax",
                            httponly=True, path="/")
    raise response

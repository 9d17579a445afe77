"""Rendering a page: the template, the viewer, the language, the navigation.

``signed_in`` wraps a page handler: it opens the session, sends whoever is not
signed in to ``/signin``, and refuses a form posted without the session's CSRF
token (403) before the handler sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from router.keys import ACCOUNTS
from router.pages.i18n import language, translator
from router.pages.outcomes import outcome_title
from router.pages.session import Viewer, check_csrf, form_is_text, page, viewer

__all__ = ["SignedInHandler", "render", "signed_in"]

SignedInHandler = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]

NAV = (("/overview", "Обзор"), ("/calls", "Звонки"), ("/settings", "Настройки"),
       ("/employees", "Сотрудники"))


def render(request: web.Request, template: str, context: Mapping[str, Any], *,
           who: Viewer | None, status: int = 200) -> web.Response:
    lang = language(request)
    accounts = sorted(a.name for a in request.app[ACCOUNTS].all()) if (
        who is not None and who.operator) else []
    response = aiohttp_jinja2.render_template(template, request, {
        "_": translator(lang), "lang": lang, "who": who, "nav": NAV, "path": request.path,
        "here": request.path_qs, "accounts": accounts, "outcome": outcome_title,
        **context}, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'")
    return response


def signed_in(handler: SignedInHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page for whoever is signed in: the viewer is resolved once, here, and a form
    posted without the session's CSRF token never reaches the handler."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        who = await viewer(request)
        if who is None:
            if request.method in ("GET", "HEAD"):
                raise web.HTTPSeeOther(f"/signin?next={quote(request.path_qs, safe='')}")
            raise web.HTTPSeeOther("/signin")
        if request.method not in ("GET", "HEAD"):
            try:
                form = await request.post()
            except (ValueError, LookupError, BadHttpMessage):  # broken multipart, bad charset
                return render(request, "refused.html", {"reason": "form"}, who=who, status=400)
            if not form_is_text(form):
                return render(request, "refused.html", {"reason": "form"}, who=who, status=400)
            if not await check_csrf(request, form.get("csrf")):
                return render(request, "refused.html", {"reason": "csrf"}, who=who, status=403)
            drawn_for = form.get("for_account")  # an operator may have switched meanwhile,
            if drawn_for is not None and drawn_for != who.account.name:  # in another tab
                return render(request, "refused.html", {"reason": "switched"}, who=who,
                              status=409)
        return await handler(request, who)
    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return page(guarded)

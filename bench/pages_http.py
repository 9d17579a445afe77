"""The admin pages over HTTP, as a signed-in browser asks for them, on seeded data.

The real app (``create_app``) serves the seeded database on loopback; a client
signs in with the operator's token, picks the seeded account and times each
page's ``GET`` (the whole answer read) the way ``bench.pages`` times a query.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from urllib.parse import quote

from aiohttp import ClientSession, CookieJar, web

from bench.pages import Seeded, Timing, time_it
from router.app import create_app
from router.config import load_config

logger = logging.getLogger(__name__)

__all__ = ["page_paths", "time_http_pages"]

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def page_paths(seeded: Seeded) -> list[tuple[str, str, str]]:
    """(name, path, note) of every page, on what ``seed`` made."""
    before = quote(seeded.deep_cursor)
    return [
        ("page /overview", "/overview", "today, with the chart"),
        ("page /calls", "/calls", "50 rows"),
        ("page /calls, deep", f"/calls?before={before}", "90 % back"),
        ("page /calls?number= client", f"/calls?number={quote(seeded.frequent_number)}",
         "a frequent caller"),
        ("page /calls?number= line", f"/calls?number={quote(seeded.line)}", "~80 % of calls"),
        ("page /calls/{entry_id}", f"/calls/{quote(seeded.entry_id)}", "one call's timeline"),
        ("page /settings", "/settings", "programs, employees"),
        ("page /employees", "/employees", "every employee"),
    ]


async def time_http_pages(dsn: str, seeded: Seeded, *, runs: int) -> list[Timing]:
    token = secrets.token_urlsafe(16)
    config = load_config(environ={
        "DATABASE_URL": dsn, "ROUTER_ADMIN_TOKEN": token,
        "ROUTER_SECRET_KEY": secrets.token_hex(32), "ROUTER_LOG_LEVEL": "WARNING"},
        env_file=None)
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    try:
        # unsafe: the session cookie comes from an IP address (browsers keep those too)
        async with ClientSession(base, cookie_jar=CookieJar(unsafe=True)) as http:
            await _sign_in(http, token, seeded.account)
            return [await _time_page(http, name, path, note, runs=runs)
                    for name, path, note in page_paths(seeded)]
    finally:
        await runner.cleanup()


async def _sign_in(http: ClientSession, token: str, account: str) -> None:
    form = await (await http.get("/signin")).text()
    csrf = _expect(_CSRF.findall(form), "the sign-in form's CSRF token")
    resp = await http.post("/signin", data={"token": token, "csrf": csrf, "next": "/settings"})
    page = await resp.text()
    csrf = _expect(_CSRF.findall(page), "a signed-in page's CSRF token")
    resp = await http.post("/account", data={"csrf": csrf, "account": account,
                                             "next": "/settings"})
    if account not in await resp.text():
        raise RuntimeError(f"could not open account {account!r} in the pages: {resp.status} "
                           f"{(await resp.text())[:3000]}")


async def _time_page(http: ClientSession, name: str, path: str, note: str, *,
                     runs: int) -> Timing:
    async def once() -> object:
        async with http.get(path, allow_redirects=False) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{path}: {resp.status} {body[:200]!r}")
            return body

    timing = await time_it(name, once, runs=runs, note=note)
    logger.info("%s: median %.2f ms", name, timing.median_ms)
    return timing


def _expect(found: Sequence[str], what: str) -> str:
    if not found:
        raise RuntimeError(f"no {what}")
    return found[-1]

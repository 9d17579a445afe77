"""The pages for people: sign-in, overview, calls, settings and employees.

Server-rendered with Jinja2 (aiohttp-jinja2); plain forms that work without
JavaScript, with a little htmx and ``app.js`` where they help, all served from
this package (the service may run where nothing outside is reachable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from router.keys import CONFIG
from router.pages.calls import setup_calls_pages
from router.pages.employees import setup_employees_page
from router.pages.overview import setup_overview_page
from router.pages.session import PAGE_KEYS, make_keys
from router.pages.settings import setup_settings_page
from router.pages.signin import setup_signin

__all__ = ["pages_ctx", "setup_pages"]


def setup_pages(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("router.pages", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        default_helpers=False)
    setup_signin(app)
    setup_overview_page(app)
    setup_calls_pages(app)
    setup_settings_page(app)
    setup_employees_page(app)
    static = Path(str(resources.files("router.pages").joinpath("static")))
    app.router.add_static("/static/", static, append_version=False)


async def pages_ctx(app: web.Application) -> AsyncIterator[None]:
    """The session key, read or made once at start (it may mean writing the data dir)."""
    app[PAGE_KEYS] = make_keys(app[CONFIG])
    yield

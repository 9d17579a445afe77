"""The pages speak Russian, as the vendor's own integration page does, or English.

Templates write the Russian text inside ``_("…")``; the English comes from
``EN`` (a test checks that every text the templates use has one). The choice
is a cookie set by ``/lang/{ru|en}``.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from router.pages.catalog_en import EN

__all__ = ["LANGUAGES", "LANGUAGE_COOKIE", "language", "translator"]

LANGUAGES = ("ru", "en")
LANGUAGE_COOKIE = "mango_router_lang"


def language(request: web.Request) -> str:
    lang = request.cookies.get(LANGUAGE_COOKIE, "ru")
    return lang if lang in LANGUAGES else "ru"


def _russian(text: str, **values: object) -> str:
    return text.format(**values) if values else text


def _english(text: str, **values: object) -> str:
    found = EN.get(text, text)
    return found.format(**values) if values else found


def translator(lang: str) -> Callable[..., str]:
    """``_("текст {n}", n=3)`` in the page's language."""
    return _english if lang == "en" else _russian

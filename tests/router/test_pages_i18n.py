"""Every Russian text the pages show has its English."""

from __future__ import annotations

import re
from importlib import resources

from router.pages.catalog_en import EN
from router.pages.outcomes import OUTCOME_TITLES
from router.pages.render import NAV
from router.pages.settings import _REASONS, _reason

_QUOTED_RUSSIAN = re.compile(r'"([^"\n]*[А-Яа-яЁё][^"\n]*)"')


def texts_in_templates() -> set[str]:
    found: set[str] = set()
    for template in resources.files("router.pages").joinpath("templates").iterdir():
        found.update(_QUOTED_RUSSIAN.findall(template.read_text(encoding="utf-8")))
    return found


def test_every_russian_text_of_the_pages_has_an_english_one() -> None:
    texts = (texts_in_templates() | {title for _, title in NAV} | set(_REASONS.values())
             | set(OUTCOME_TITLES.values()))
    assert len(texts) > 50  # the templates were read
    assert sorted(texts - EN.keys()) == []


def test_the_english_catalog_keeps_the_placeholders_of_the_russian() -> None:
    for russian, english in EN.items():
        assert re.findall(r"\{\w+\}", russian) == re.findall(r"\{\w+\}", english), russian


def test_a_refused_route_line_is_named_in_the_pages_words() -> None:
    words, named = _reason("'abc' is not a phone number")
    assert (words, named) == ("Не номер телефона: ", "'abc'")
    assert words in EN
    assert _reason("each line must be a phone number written as a string")[0] in EN

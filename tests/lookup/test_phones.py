"""Phone numbers: one canonical key per number (PROTOCOLS §4), and how numbers are written."""

from __future__ import annotations

import random

import pytest

from lookup import phones
from lookup.phones import format_phone, masked, phone_key

RU_FORMS = ["+7 (916) 123-45-67", "8 916 123-45-67", "79161234567", "9161234567"]


def _written_forms(national: str) -> list[str]:
    """The ways a 10-digit Russian national number is written: +7 (...), 8 ..., 7..., bare."""
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return [f"+7 ({a}) {b}-{c}-{d}", f"8 {a} {b}-{c}-{d}", f"7{national}", national]


@pytest.mark.parametrize("raw", RU_FORMS)
def test_russian_written_forms_give_one_key(raw: str) -> None:
    assert phone_key(raw) == 79161234567
    assert phone_key(raw) == 79161234567


@pytest.mark.parametrize("raw", ["+7 916 123-45-67", "8 (916) 123-45-67", "89161234567",
                                 "+79161234567", "7 916 123 45 67", "8-916-123-45-67"])
def test_other_common_russian_shapes_give_the_same_key(raw: str) -> None:
    assert phone_key(raw) == 79161234567


@pytest.mark.parametrize("raw", ["", "   ", "abc", "phone", "+", "+7", "123", "12345",
                                 "not a number 42"])
def test_non_numbers_and_too_short_numbers_give_none(raw: str) -> None:
    assert phone_key(raw) is None
    assert phone_key(raw) is None


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+380 44 123 4567", 380441234567),
        ("380441234567", 380441234567),
        ("+1 650 253 0000", 16502530000),
        ("+44 20 7946 0958", 442079460958),
    ],
)
def test_international_numbers_keep_their_country_code(raw: str, key: int) -> None:
    assert phone_key(raw) == key


def test_fast_paths_agree_with_the_full_parse_on_random_russian_mobiles() -> None:
    rng = random.Random(20240601)
    checked = 0
    for _ in range(2500):
        national = "9" + "".join(rng.choice("0123456789") for _ in range(9))
        expected = int("7" + national)
        for raw in _written_forms(national):
            assert phone_key(raw) == expected, raw
            assert phones._parse(raw, "RU") == expected, raw
            checked += 1
    assert checked == 10000


def test_russian_written_forms_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def spy(raw: str, region: str) -> int | None:
        calls.append((raw, region))
        return None

    monkeypatch.setattr(phones, "_parse", spy)
    assert [phone_key(raw) for raw in RU_FORMS] == [79161234567] * 4
    assert calls == []


@pytest.mark.parametrize(
    ("raw", "region", "key"),
    [
        ("7011234567", "KZ", 77011234567),
        ("8 701 123 4567", "KZ", 77011234567),
        ("(650) 253-0000", "US", 16502530000),
        ("6502530000", "US", 16502530000),
    ],
)
def test_another_default_region_goes_through_the_full_parse(
    monkeypatch: pytest.MonkeyPatch, raw: str, region: str, key: int
) -> None:
    real_parse = phones._parse
    calls: list[tuple[str, str]] = []

    def spy(text: str, reg: str) -> int | None:
        calls.append((text, reg))
        return real_parse(text, reg)

    monkeypatch.setattr(phones, "_parse", spy)
    assert phone_key(raw, region) == key
    assert calls == [(raw, region)]


def test_ten_digits_in_the_us_region_are_not_read_as_russian() -> None:
    assert phone_key("6502530000", "US") == 16502530000
    assert phone_key("6502530000", "RU") == 76502530000


@pytest.mark.parametrize(
    ("fmt", "written"),
    [
        ("e164", "+79161234567"),
        ("international", "+7 916 123-45-67"),
        ("national", "8 (916) 123-45-67"),
        ("digits", "79161234567"),
    ],
)
def test_format_phone_writes_each_format(fmt: phones.PhoneFormat, written: str) -> None:
    assert format_phone(79161234567, fmt) == written
    assert phone_key(written) == 79161234567


def test_format_phone_keeps_a_foreign_country_code() -> None:
    assert format_phone(380441234567, "e164") == "+380441234567"
    assert format_phone(380441234567, "international") == "+380 44 123 4567"


@pytest.mark.parametrize("fmt", ["national", "digits"])
def test_a_number_outside_the_accounts_region_is_written_internationally_in_any_format(
    fmt: phones.PhoneFormat,
) -> None:
    # "044 123 4567" would read back as Moscow's 70441234567, "81312345678" as 71312345678
    assert format_phone(380441234567, fmt, "RU") == "+380 44 123 4567"
    assert format_phone(81312345678, fmt, "RU") == "+81 3-1234-5678"
    assert format_phone(79161234567, fmt, "US") == "+7 916 123-45-67"
    # the region's own numbers keep the format chosen; Kazakhstan shares Russia's +7
    assert format_phone(380441234567, fmt, "UA") == {"national": "044 123 4567",
                                                     "digits": "380441234567"}[fmt]
    assert format_phone(77012345678, fmt, "RU") == {"national": "8 (701) 234 5678",
                                                    "digits": "77012345678"}[fmt]


@pytest.mark.parametrize("region", ["RU", "UA", "US"])
@pytest.mark.parametrize("fmt", ["e164", "international", "national", "digits"])
@pytest.mark.parametrize("key", [79161234567, 77012345678, 380441234567, 81312345678,
                                 12125551234, 442079460958, 3545512345])
def test_a_written_number_reads_back_as_itself_in_the_accounts_region(
    key: int, fmt: phones.PhoneFormat, region: str,
) -> None:
    assert phone_key(format_phone(key, fmt, region), region) == key


@pytest.mark.parametrize(("number", "shown"), [
    ("79161234567", "***4567"), ("+7 916 123-45-67", "***5-67"), ("1234567", "***4567"),
    ("101", "***"), ("123456", "***"), ("", "***")])
def test_a_masked_number_shows_at_most_its_last_four_characters(number: str, shown: str
                                                                 ) -> None:
    assert masked(number) == shown

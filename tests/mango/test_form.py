"""The PBX's form body: its fields decoded exactly, anything not UTF-8 refused."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, quote_plus, urlencode

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mango.form import parse_form


def test_the_three_fields_of_a_notification_come_back_exactly_as_signed() -> None:
    raw = orjson.dumps({"entry_id": "MjA4NzQ4OTA5Mg==", "from": {"number": "79161234567"},
                        "name": "Пётр \\ \"+&=%"}).decode()
    body = urlencode({"vpbx_api_key": "k", "sign": "ab", "json": raw}).encode()
    assert parse_form(body) == {"vpbx_api_key": "k", "sign": "ab", "json": raw}


@pytest.mark.parametrize(("body", "expected"), [
    (b"a=%7B%22x%22%3A1%7D&b=c+d&c=c%2Bd", {"a": '{"x":1}', "b": "c d", "c": "c+d"}),
    (b"a=%zz&b=%4&c=%", {"a": "%zz", "b": "%4", "c": "%"}),  # no escape: kept as it is
    (b"a&b=&=c&&d=1=2", {"a": "", "b": "", "": "c", "d": "1=2"}),
    (b"a=raw\\x41", {"a": "raw\\x41"}),  # a backslash of the body's own is not an escape
    ("a=пр%D0%B8".encode(), {"a": "при"}),  # raw UTF-8 and escaped UTF-8
    (b"vpbx%5Fapi%5Fkey=k&a=1&a=2", {"vpbx_api_key": "k", "a": "2"}),  # the last repeat wins
])
def test_form_fields_decode(body: bytes, expected: dict[str, str]) -> None:
    assert parse_form(body) == expected


@pytest.mark.parametrize("body", [b"a=%D0", b"a=\xff", b"json=\xd0%90", b"json=%D0\x90"])
def test_escapes_that_are_not_utf8_are_refused(body: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        parse_form(body)


@pytest.mark.parametrize("escape", [b"%C0%80", b"%ED%A0%80", b"%E0%80%80", b"%F4%90%80%80",
                                    b"%F5", b"%E2%82"])
def test_overlong_surrogate_and_out_of_range_escapes_are_refused(escape: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        parse_form(b"vpbx_api_key=k&json=" + escape)


def test_sixty_four_fields_are_taken_and_sixty_five_refused() -> None:
    assert len(parse_form(b"&".join(b"f%d=1" % i for i in range(64)))) == 64
    with pytest.raises(ValueError, match="fields"):
        parse_form(b"&".join(b"f%d=1" % i for i in range(65)))


def test_a_body_of_thousands_of_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="fields"):
        parse_form(b"&".join(b"f%d=1" % i for i in range(1000)))


def _strict_reference(body: bytes) -> dict[str, str] | str:
    """What ``urllib.parse.parse_qsl`` makes of a body, strictly, or ``"refused"``."""
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, errors="strict",
                              max_num_fields=64))
    except ValueError:
        return "refused"


def _decoded(body: bytes) -> dict[str, str] | str:
    try:
        return parse_form(body)
    except ValueError:
        return "refused"


_FORM_BYTES = st.lists(st.sampled_from(
    [b"a", b"b", b"=", b"&", b"+", b"%", b"2B", b"zz", b"D0", b"90", b"EF%BF%BD", b"\xd0",
     b"\x90", b"\xef\xbf\xbd", b";", b"#", b"?", b" ", b"\x00", "п".encode()]),
    max_size=24).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(body=_FORM_BYTES)
def test_any_body_decodes_as_strict_parse_qsl_would(body: bytes) -> None:
    assert _decoded(body) == _strict_reference(body)


_TEXT = st.characters(exclude_categories=["Cs"])  # lone surrogates are not UTF-8 at all


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(st.text(_TEXT, max_size=8), st.text(_TEXT, max_size=40),
                              max_size=4),
       plus=st.booleans())
def test_any_encoded_form_comes_back_as_it_was_sent(fields: dict[str, str], plus: bool) -> None:
    body = urlencode(fields, quote_via=quote_plus if plus else quote).encode()
    assert parse_form(body) == fields


def test_a_replacement_character_the_pbx_really_sent_is_kept() -> None:
    raw = '{"name": "\ufffd"}'
    assert parse_form(urlencode({"json": raw}).encode()) == {"json": raw}

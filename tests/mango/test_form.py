"""The PBX's form body: its fields decoded exactly, anything not UTF-8 refused."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
import pytest

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


def test_a_body_of_thousands_of_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="fields"):
        parse_form(b"&".join(b"f%d=1" % i for i in range(1000)))

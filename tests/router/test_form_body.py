"""The form decoder gives exactly what ``urllib.parse.parse_qsl`` gives, faster."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest

from router.form_body import parse_form


def reference(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True, errors="strict"))


@pytest.mark.parametrize("body", [
    urlencode({"vpbx_api_key": "k", "sign": "ab", "json": orjson.dumps(
        {"entry_id": "MjA4NzQ4OTA5Mg==", "from": {"number": "79161234567"},
         "name": "Пётр \\ \"+&=%"}).decode()}).encode(),
    b"a=%7B%22x%22%3A1%7D&b=c+d&c=c%2Bd",
    b"a=%zz&b=%4&c=%",  # '%' that starts no escape stays as it is
    b"a&b=&=c&&d=1=2",  # no '=', empty name, empty part, '=' in the value
    b"a=raw\\x41",  # a backslash of the body's own is not an escape
    "a=пр%D0%B8".encode(),  # raw UTF-8 and escaped UTF-8
    b"vpbx%5Fapi%5Fkey=k&a=1&a=2",  # escaped names; the last repeat wins
])
def test_form_fields_decode_as_parse_qsl_does(body: bytes) -> None:
    assert parse_form(body) == reference(body)


def test_random_bodies_decode_as_parse_qsl_does() -> None:
    rng = random.Random(7)
    alphabet = "ab=&+%\\ 0123456789ABCDEFfgzп\"{}"
    raw = [b"\xd0", b"\x90", b"\xff"]  # stray bytes of UTF-8 sequences
    for _ in range(5000):
        body = b"".join(rng.choice(raw) if rng.random() < 0.05 else rng.choice(alphabet).encode()
                        for _ in range(rng.randint(0, 24)))
        try:
            expected = reference(body)
        except ValueError:
            with pytest.raises(UnicodeDecodeError):
                parse_form(body)
            continue
        assert parse_form(body) == expected, body


@pytest.mark.parametrize("body", [b"a=%D0", b"a=\xff", b"json=\xd0%90", b"json=%D0\x90"])
def test_escapes_that_are_not_utf8_are_refused(body: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        parse_form(body)

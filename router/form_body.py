"""Decoding an ``application/x-www-form-urlencoded`` body: the PBX's three fields.

``urllib.parse.parse_qsl`` decodes percent-escapes in Python, one by one, and a
PBX notification's ``json`` field is mostly escapes: it was the largest single
cost of a notification after the HTTP stack itself. Here each value is decoded
in C: every ``%XY`` becomes ``\\xXY`` for ``codecs.escape_decode``. That is exact
only when the body is ASCII (raw UTF-8 next to an escape would otherwise be
joined before it is checked), has no backslash of its own, and every ``%``
starts a valid escape; any other body takes ``parse_qsl``, so the result is
always the same.
"""

from __future__ import annotations

import codecs
from urllib.parse import parse_qsl

__all__ = ["parse_form"]


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of a form body (the last of repeated names wins).

    ``ValueError`` if the body or an escape is not UTF-8.
    """
    if body.isascii() and b"\\" not in body:
        try:
            return {_unquote(name): _unquote(value)
                    for name, _, value in (part.partition(b"=")
                                           for part in body.split(b"&") if part)}
        except ValueError:  # a '%' that starts no escape: parse_qsl keeps it as it is
            pass
    return dict(parse_qsl(body.decode(), keep_blank_values=True, errors="strict"))


def _unquote(raw: bytes) -> str:
    if b"%" in raw:
        raw = codecs.escape_decode(raw.replace(b"+", b" ").replace(b"%", b"\\x"))[0]
    elif b"+" in raw:
        raw = raw.replace(b"+", b" ")
    return raw.decode()

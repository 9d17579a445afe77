"""Decoding the PBX's ``application/x-www-form-urlencoded`` body: its three fields.

``urllib.parse.parse_qsl`` does the decoding, strictly: a body or an escape
that is not UTF-8 is a ``ValueError`` (a 400), never a field with replacement
characters in it, so the signature is checked over the exact ``json`` string
the PBX signed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

__all__ = ["parse_form"]

_MAX_FIELDS = 64  # the PBX sends three; a body of thousands of fields is not the PBX's


def parse_form(body: bytes) -> dict[str, str]:
    """The fields of a form body (the last of repeated names wins).

    ``ValueError`` if the body or an escape is not UTF-8, or it has too many fields.
    """
    return dict(parse_qsl(body.decode(), keep_blank_values=True, errors="strict",
                          max_num_fields=_MAX_FIELDS))

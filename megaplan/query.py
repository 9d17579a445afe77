"""Megaplan v3 takes all GET parameters as one URL-encoded JSON object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

__all__ = ["encode_query"]


def encode_query(params: Mapping[str, Any] | None) -> str:
    """``?{"limit":100}`` URL-encoded (like PHP's ``rawurlencode``), or "" for none."""
    if not params:
        return ""
    return "?" + quote(orjson.dumps(dict(params)).decode(), safe="")

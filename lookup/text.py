"""Whether a str is text: Python hands bytes that are not UTF-8 (header bytes, command
arguments, environment variables, what some form charsets decode to) on as lone
surrogates, which PostgreSQL, a hash or a header cannot take and ``encode`` refuses."""

from __future__ import annotations

__all__ = ["is_text"]


def is_text(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8 (no lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True

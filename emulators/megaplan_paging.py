"""v3 list paging: ``limit`` (at most 100) and the ``pageAfter`` cursor."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from emulators.megaplan_http import ApiError

__all__ = [
    "MAX_LIMIT",
    "Page",
    "cursor_id",
    "page_from",
    "read_limit",
    "start_in_list",
    "start_in_sorted_ints",
]

MAX_LIMIT = 100
Page = tuple[list[Any], dict[str, Any]]


def read_limit(query: dict[str, Any]) -> int:
    limit = query.get("limit", MAX_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ApiError(422, "limit must be a positive integer", "limit")
    if limit > MAX_LIMIT:
        raise ApiError(422, f"limit must be at most {MAX_LIMIT}", "limit")
    return limit


def cursor_id(query: dict[str, Any]) -> str | None:
    after = query.get("pageAfter")
    if after is None:
        return None
    oid = after.get("id") if isinstance(after, dict) else None
    if isinstance(oid, int) and not isinstance(oid, bool):
        oid = str(oid)
    if not isinstance(oid, str) or not oid:
        raise ApiError(422, "pageAfter must be an object with an id", "pageAfter")
    return oid


def page_from(
    items: Iterator[Any], limit: int, total: int, keep: Callable[[Any], bool] | None = None
) -> Page:
    """Take ``limit`` kept items and look one further to tell ``hasMoreNext``."""
    out: list[Any] = []
    more = False
    for item in items:
        if keep is not None and not keep(item):
            continue
        if len(out) == limit:
            more = True
            break
        out.append(item)
    return out, {"count": total, "limit": limit, "hasMoreNext": more}


def start_in_list(ids: Sequence[str], after: str | None) -> int:
    if after is None:
        return 0
    try:
        return ids.index(after) + 1
    except ValueError:
        raise ApiError(422, "pageAfter object not found", "pageAfter") from None


def start_in_sorted_ints(keys: Sequence[int], after: str | None) -> int:
    if after is None:
        return 0
    if not after.isdigit():
        raise ApiError(422, "pageAfter id must be digits", "pageAfter")
    return bisect.bisect_right(keys, int(after))

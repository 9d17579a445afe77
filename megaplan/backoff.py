"""How long to wait before a retry: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "retry_after_seconds"]


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter (uniform in [0, min(cap, base*2**attempt)]) spreads retrying clients."""
    return rng.uniform(0.0, min(cap, base * (2**attempt)))


def retry_after_seconds(headers: Mapping[str, str], *, cap: float,
                        now: datetime | None = None) -> float | None:
    """The server's ``Retry-After`` in seconds, capped: seconds, or an HTTP date
    (RFC 9110 allows both; a date already past is 0)."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC, as HTTP dates are
            when = when.replace(tzinfo=UTC)
        value = max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    if value < 0 or value != value:  # negative or NaN
        return None
    return min(value, cap)

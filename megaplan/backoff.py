"""How long to wait before a retry: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Mapping

__all__ = ["backoff_delay", "retry_after_seconds"]


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter (uniform in [0, min(cap, base*2**attempt)]) spreads retrying clients."""
    return rng.uniform(0.0, min(cap, base * (2**attempt)))


def retry_after_seconds(headers: Mapping[str, str], *, cap: float) -> float | None:
    """The server's ``Retry-After`` in seconds (the delta form only), capped."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if value < 0 or value != value:  # negative or NaN
        return None
    return min(value, cap)

"""A per-client request rate cap: the CRM is shared and rate-limited."""

from __future__ import annotations

import asyncio

__all__ = ["RateLimiter"]


class RateLimiter:
    """Spaces calls at least ``1/rate`` seconds apart (a token bucket of one token).

    Slots are handed out in call order, so concurrent callers queue fairly and
    the cap holds across retries and token requests alike.
    """

    def __init__(self, rate_per_second: float | None) -> None:
        if rate_per_second is not None and rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive (or None for no cap)")
        self._interval = 0.0 if rate_per_second is None else 1.0 / rate_per_second
        self._next_slot = 0.0

    async def acquire(self) -> None:
        if self._interval == 0.0:
            return
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)

"""The per-client request rate cap holds for sequential and concurrent calls."""

from __future__ import annotations

import asyncio
import time

import pytest

from emulators.megaplan import MegaplanState
from megaplan.rate_limit import RateLimiter
from tests.megaplan.conftest import ClientFactory


async def test_ten_requests_at_20_per_second_take_at_least_045_seconds(
    make_client: ClientFactory,
) -> None:
    async with make_client(rate_per_second=20.0) as client:
        started = time.monotonic()
        for _ in range(9):  # plus the token request: ten in all
            await client.call_route("79161234567")
        elapsed = time.monotonic() - started
    assert client.request_count == 10
    assert 0.44 <= elapsed < 2.0


async def test_concurrent_callers_share_one_cap(
    make_client: ClientFactory, mp_state: MegaplanState
) -> None:
    async with make_client(rate_per_second=40.0) as client:
        await client.programs()
        started = time.monotonic()
        await asyncio.gather(*(client.call_route("79161234567") for _ in range(12)))
        elapsed = time.monotonic() - started
    assert 11 / 40 - 0.01 <= elapsed < 2.0
    assert mp_state.request_count == 2 + 12


async def test_retries_count_against_the_cap(
    make_client: ClientFactory, mp_state: MegaplanState
) -> None:
    async with make_client(rate_per_second=20.0, backoff_base=0.0, max_retries=4) as client:
        await client.programs()
        mp_state.faults.error_count = 4
        started = time.monotonic()
        await client.programs()
        elapsed = time.monotonic() - started
    assert client.request_count == 2 + 5
    assert elapsed >= 4 * 0.05 - 0.01


async def test_limiter_without_a_rate_never_waits() -> None:
    limiter = RateLimiter(None)
    started = time.monotonic()
    for _ in range(1000):
        await limiter.acquire()
    assert time.monotonic() - started < 0.5


def test_limiter_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)

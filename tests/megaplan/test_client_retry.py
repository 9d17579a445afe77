"""Resilience: 429 with Retry-After, 5xx, dropped connections, giving up."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from emulators.megaplan import MegaplanState
from megaplan.client import MegaplanClient
from megaplan.errors import MegaplanUnavailableError
from megaplan.mapping import CallInfo
from tests.megaplan.conftest import ClientFactory

CALL = CallInfo(
    provider_id="entry-1",
    type="in",
    from_phone="79161234567",
    to_phone="74951112233",
    time_from=datetime(2024, 3, 1, 12, tzinfo=UTC),
    time_to=datetime(2024, 3, 1, 12, 1, tzinfo=UTC),
)


async def test_429_is_retried_after_the_servers_retry_after(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()  # token in hand
    mp_state.faults.throttle_count = 1
    mp_state.faults.retry_after_s = 0.3
    started = time.monotonic()
    programs = await client.programs()
    elapsed = time.monotonic() - started
    assert [p.id for p in programs] == ["1", "2"]
    assert 0.3 <= elapsed < 2.0  # our own backoff here is milliseconds
    assert client.request_count == 2 + 2


async def test_5xx_is_retried_until_success(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.error_count = 2
    assert len(await client.employees()) == len(mp_state.employees)
    assert client.request_count == 2 + 3


async def test_retries_run_out_with_an_unavailable_error(
    make_client: ClientFactory, mp_state: MegaplanState
) -> None:
    async with make_client(max_retries=2) as client:
        await client.programs()
        mp_state.faults.error_count = 100
        with pytest.raises(MegaplanUnavailableError) as info:
            await client.employees()
        assert info.value.status == 503
        assert client.request_count == 2 + 3  # the first try and two retries
    assert mp_state.faults.error_count == 97


async def test_a_dropped_connection_is_retried(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.drop_count = 2
    assert len(await client.employees()) == len(mp_state.employees)
    assert mp_state.faults.drop_count == 0


async def test_connections_dropped_every_time_end_in_an_unavailable_error(
    make_client: ClientFactory, mp_state: MegaplanState
) -> None:
    mp_state.faults.drop_count = 10
    async with make_client(max_retries=1) as client:
        with pytest.raises(MegaplanUnavailableError, match="gave up after 2 attempts"):
            await client.programs()
    assert mp_state.faults.drop_count == 8


async def test_the_token_request_is_retried_too(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    mp_state.faults.error_count = 1
    assert len(await client.programs()) == 2
    assert mp_state.tokens_issued == 1


async def test_a_dropped_idempotent_write_is_retried_by_the_client(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.programs()
    mp_state.faults.drop_count = 1  # a POST is never re-sent by aiohttp itself
    await client.record_calls([CALL])
    assert client.request_count == 2 + 2
    assert mp_state.call_posts["entry-1"] == 1


async def test_a_read_that_times_out_once_is_retried(
    make_client: ClientFactory, mp_state: MegaplanState
) -> None:
    async with make_client(request_timeout=1.0) as client:
        await client.programs()  # the token in hand (on a busy host, maybe after a retry)
        before = client.request_count
        mp_state.faults.stall_count = 1
        mp_state.faults.stall_s = 2.0
        assert [p.id for p in await client.programs()] == ["1", "2"]
        assert client.request_count - before == 2  # the stalled read and its retry

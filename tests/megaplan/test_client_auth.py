"""Tokens: fetched once, renewed transparently on 401, credentials checked."""

from __future__ import annotations

import asyncio

import pytest

from emulators.megaplan import MegaplanState
from megaplan.client import MegaplanClient
from megaplan.errors import MegaplanAuthError, MegaplanError
from tests.megaplan.conftest import ClientFactory


async def test_one_token_serves_many_requests(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    await client.employees()
    await client.programs()
    assert mp_state.tokens_issued == 1
    assert client.request_count == 3  # token + two list pages


async def test_expired_token_mid_paging_is_renewed_without_the_caller_noticing(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    seen: list[str] = []
    async for c in client.contractors():
        seen.append(c.id)
        if len(seen) == 150:  # the second page is in hand; the third needs the server
            mp_state.expire_tokens()
    assert len(seen) == len(mp_state.clients) == 250
    assert len(set(seen)) == 250
    assert mp_state.tokens_issued == 2


async def test_a_token_refused_again_after_renewal_raises_401(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    mp_state.token_ttl_s = 0  # every token is stale as soon as it is issued
    with pytest.raises(MegaplanError) as info:
        await client.employees()
    assert info.value.status == 401
    assert mp_state.tokens_issued == 2  # the first and exactly one renewal


async def test_wrong_password_raises_401_with_the_servers_reason(
    make_client: ClientFactory,
) -> None:
    async with make_client(password="not-the-password") as client:
        with pytest.raises(MegaplanError) as info:
            await client.employees()
    assert info.value.status == 401
    assert "Invalid username or password" in str(info.value)


async def test_refused_credentials_are_refused_again_for_a_while_without_asking(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests that waited for the token do not each try the wrong password (a CRM may
    # lock the user out after a few)
    async with make_client(password="not-the-password") as client:
        results = await asyncio.gather(*(client.employees() for _ in range(5)),
                                       return_exceptions=True)
        assert all(isinstance(r, MegaplanAuthError) for r in results)
        assert client.request_count == 1
        monkeypatch.setattr("megaplan.client._REFUSED_AGAIN_S", 0.0)  # a while later
        with pytest.raises(MegaplanAuthError):
            await client.employees()
        assert client.request_count == 2


async def test_requests_before_start_are_refused(make_client: ClientFactory) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await make_client().employees()

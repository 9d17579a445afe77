"""The client's observer hears of every API call: None when the CRM answered (a refusal
of the request as it is included), else a short reason without secrets."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from emulators.megaplan import MegaplanState
from megaplan.client import MegaplanClient
from megaplan.credentials import MegaplanCredentials
from megaplan.errors import MegaplanError
from tests.conftest import PASSWORD
from tests.megaplan.conftest import ClientFactory


async def test_answered_calls_are_heard_as_none(
    make_client: ClientFactory, mp_state: MegaplanState
) -> None:
    heard: list[str | None] = []
    async with make_client(observer=heard.append) as client:
        await client.programs()
        await client.extra_fields()
    assert heard == [None, None]


async def test_a_crm_that_answers_5xx_to_the_last_retry_is_heard_with_its_reason(
    make_client: ClientFactory, mp_state: MegaplanState
) -> None:
    heard: list[str | None] = []
    async with make_client(observer=heard.append, max_retries=1) as client:
        await client.programs()  # the token and one answer
        mp_state.faults.error_rate = 1.0
        with pytest.raises(MegaplanError):
            await client.programs()
        mp_state.faults.error_rate = 0.0
        await client.programs()
    assert heard[0] is None
    assert heard[1] is not None
    assert heard[1].startswith("Megaplan answered 503")
    assert heard[2] is None


async def test_a_refused_password_is_an_error_and_never_shows_the_password(
    make_client: ClientFactory,
) -> None:
    heard: list[str | None] = []
    wrong = PASSWORD + "-not"
    async with make_client(password=wrong, observer=heard.append) as client:
        with pytest.raises(MegaplanError):
            await client.programs()
    [reason] = heard
    assert reason is not None
    assert reason.startswith("Megaplan answered 401")
    assert wrong not in reason
    assert len(reason) <= 200


async def test_a_request_the_crm_refuses_as_it_is_still_means_the_crm_answered(
    make_client: ClientFactory,
) -> None:
    heard: list[str | None] = []
    async with make_client(observer=heard.append) as client:
        with pytest.raises(MegaplanError) as info:
            await client.client_deals("no-such-client")
    assert info.value.status == 404
    assert heard == [None]


async def test_a_crm_that_cannot_be_reached_is_heard_as_an_error() -> None:
    gone = TestServer(web.Application(), host="127.0.0.1")
    await gone.start_server()
    url = f"http://127.0.0.1:{gone.port}"
    await gone.close()
    heard: list[str | None] = []
    credentials = MegaplanCredentials(base_url=url, username="demo", password=PASSWORD)
    async with MegaplanClient(credentials, rate_per_second=None, max_retries=0,
                              observer=heard.append) as client:
        with pytest.raises(MegaplanError):
            await client.programs()
    [reason] = heard
    assert reason is not None
    assert "gave up after 1 attempts" in reason

"""Credentials never show in exceptions, reprs or logs."""

from __future__ import annotations

import logging
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web

from emulators.megaplan import MegaplanState
from megaplan.client import MegaplanClient
from megaplan.credentials import MegaplanCredentials
from megaplan.errors import MegaplanError
from tests.conftest import PASSWORD
from tests.megaplan.conftest import ClientFactory
from tests.megaplan.stub import serve_stub


def test_credentials_and_client_reprs_hide_the_password() -> None:
    creds = MegaplanCredentials(base_url="https://x.megaplan.ru/", username="u", password=PASSWORD)
    assert PASSWORD not in repr(creds)
    assert creds.base_url == "https://x.megaplan.ru"
    assert PASSWORD not in repr(MegaplanClient(creds))


async def test_a_failed_login_leaks_no_password_in_error_or_logs(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + PASSWORD
    async with make_client(password=wrong) as client:
        with pytest.raises(MegaplanError) as info:
            await client.programs()
    for text in (str(info.value), repr(info.value), caplog.text):
        assert wrong not in text
        assert quote(wrong) not in text


async def test_tokens_and_password_stay_out_of_logs_through_renewals_and_retries(
    client: MegaplanClient, mp_state: MegaplanState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.programs()
    mp_state.expire_tokens()
    mp_state.faults.error_count = 1
    mp_state.faults.drop_count = 1
    await client.programs()
    tokens = list(mp_state._tokens)
    assert tokens
    assert "got an access token" in caplog.text  # the logs did say something
    for secret in (PASSWORD, *tokens):
        assert secret not in caplog.text


async def test_an_error_echoing_the_password_is_scrubbed() -> None:
    echo = {"meta": {"status": 422, "errors": [{"field": "x", "message": f"bad {PASSWORD}"}]}}

    async def deal(request: web.Request) -> web.Response:
        return web.Response(status=422, body=orjson.dumps(echo), content_type="application/json")

    async with serve_stub([("POST", "/api/v3/deal", deal)]) as url:
        creds = MegaplanCredentials(base_url=url, username="u", password=PASSWORD)
        async with MegaplanClient(creds, rate_per_second=None) as client:
            with pytest.raises(MegaplanError) as info:
                await client.create_deal(
                    program_id="1", state_id=None, contractor_id="2", manager_id="3", name="n"
                )
    assert info.value.status == 422
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)
    assert "bad ***" in str(info.value)

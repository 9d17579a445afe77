"""``GET /api/health``: whether an account's PBX API and CRM answered lately, as every
replica noted it (real app, real database, the PBX and Megaplan emulators made to fail)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from emulators.megaplan import MegaplanState
from lookup.accounts import add_account
from router.health import FLUSH_S
from tests.conftest import PASSWORD, Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED

OPERATOR = {"Authorization": "Bearer operator-token"}
WITHIN = FLUSH_S * 3 + 5  # notes are written every FLUSH_S seconds


async def _health(svc: Service, **params: str) -> dict[str, Any]:
    resp = await svc.client.get("/api/health", params=params, headers=OPERATOR)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _until(svc: Service, holds: Callable[[dict[str, Any]], bool],
                 within: float = WITHIN) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while not holds(body := await _health(svc)):
        assert time.monotonic() < deadline, f"not within {within} s: {body}"
        await asyncio.sleep(0.1)
    return body


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str) -> Service:
    await load_records(dsn, ALL)
    return await service_factory()


async def test_health_needs_the_operators_or_the_accounts_own_token(
    svc: Service, dsn: str
) -> None:
    con = await asyncpg.connect(dsn)
    try:
        acme_token = await add_account(con, name="acme", mango_api_key="acme-key",
                                       mango_api_salt="s", mango_api_url="http://127.0.0.1:1/")
    finally:
        await con.close()
    deadline = time.monotonic() + 3
    while (await svc.client.get("/api/health", params={"account": "acme"},
                                headers=OPERATOR)).status != 200:
        assert time.monotonic() < deadline, "the new account did not reach the service"
        await asyncio.sleep(0.05)

    assert (await svc.client.get("/api/health")).status == 401
    other = {"Authorization": f"Bearer {acme_token}"}
    assert (await svc.client.get("/api/health", headers=other)).status == 403
    own = await svc.client.get("/api/health", params={"account": "acme"}, headers=other)
    assert own.status == 200
    assert (await own.json())["account"] == "acme"
    wrong = {"Authorization": "Bearer nope"}
    assert (await svc.client.get("/api/health", headers=wrong)).status == 403
    unknown = await svc.client.get("/api/health", params={"account": "nobody"},
                                   headers=OPERATOR)
    assert unknown.status == 400


async def test_an_account_without_a_crm_has_no_crm_health_and_a_pbx_never_contacted(
    svc: Service,
) -> None:
    body = await _health(svc)
    assert body["account"] == "default"
    assert body["pbx"] == {"ok": None, "last_ok_at": None, "last_error_at": None,
                           "last_error": None}
    assert body["crm"] is None
    assert body["crm_reason"] == "no CRM configured for this account"


async def test_a_failing_pbx_shows_its_last_error_then_ok_once_it_answers_again(
    svc: Service, service_factory: ServiceFactory
) -> None:
    svc.pbx.behaviour.http_status = 500
    await svc.event("events/call", call_event("down-1", ROUTED))
    failing = await _until(svc, lambda b: b["pbx"]["ok"] is False)
    assert failing["pbx"]["last_error"] == "HTTP 500"
    assert failing["pbx"]["last_ok_at"] is None
    failed_at = _at(failing["pbx"]["last_error_at"])

    svc.pbx.behaviour.http_status = 200
    await svc.event("events/call", call_event("up-1", ROUTED))
    await svc.pbx.wait_routes(2)
    healthy = await _until(svc, lambda b: b["pbx"]["ok"] is True)
    assert _at(healthy["pbx"]["last_ok_at"]) > failed_at
    assert healthy["pbx"]["last_error"] == "HTTP 500"  # kept, with its time
    assert _at(healthy["pbx"]["last_error_at"]) == failed_at

    other = await service_factory()  # another replica on the same database says the same
    seen = await _health(other)
    assert (seen["pbx"], seen["crm"]) == (healthy["pbx"], healthy["crm"])


async def test_a_pbx_that_does_not_answer_in_time_is_a_timeout(svc: Service) -> None:
    svc.pbx.behaviour.delay_ms = 2500  # the route's command waits 2 s
    await svc.event("events/call", call_event("slow-1", ROUTED))
    failing = await _until(svc, lambda b: b["pbx"]["ok"] is False)
    assert failing["pbx"]["last_error"] == "no answer: timeout"


async def test_a_failing_crm_shows_its_last_error_then_ok_once_it_answers_again(
    service_factory: ServiceFactory, mp_state: MegaplanState, mp_url: str,
) -> None:
    mp_state.faults.error_rate, mp_state.faults.error_status = 1.0, 403
    svc = await service_factory(MEGAPLAN_URL=mp_url, MEGAPLAN_USERNAME="demo",
                                MEGAPLAN_PASSWORD=PASSWORD, MEGAPLAN_RATE="1000",
                                MEGAPLAN_POLL_SECONDS="0.3")
    failing = await _until(svc, lambda b: b["crm"] is not None and b["crm"]["ok"] is False)
    assert "crm_reason" not in failing
    assert failing["crm"]["last_error"].startswith("Megaplan answered 403")
    assert PASSWORD not in failing["crm"]["last_error"]
    assert len(failing["crm"]["last_error"]) <= 200

    mp_state.faults.error_rate = 0.0
    healthy = await _until(svc, lambda b: b["crm"]["ok"] is True)
    assert _at(healthy["crm"]["last_ok_at"]) > _at(healthy["crm"]["last_error_at"])
    assert healthy["crm"]["last_error"].startswith("Megaplan answered 403")
    # the sync read the PBX's users too, once the CRM answered
    await _until(svc, lambda b: b["pbx"]["ok"] is True)


async def test_a_removed_accounts_health_goes_with_it(
    svc: Service, dsn: str
) -> None:
    await svc.event("events/call", call_event("e1", ROUTED))
    await _until(svc, lambda b: b["pbx"]["ok"] is True)
    con = await asyncpg.connect(dsn)
    try:
        assert await con.fetchval("SELECT count(*) FROM service_health") == 1
        await con.execute("DELETE FROM accounts WHERE name = 'default'")
        assert await con.fetchval("SELECT count(*) FROM service_health") == 0
    finally:
        await con.close()

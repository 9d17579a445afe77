"""Sidecar lookup, health, readiness, metrics and the settings API."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import orjson
import pytest

from lookup.accounts import add_account
from lookup.settings import Settings
from tests.conftest import Service, ServiceFactory, call_event, load_records, metrics_showing
from tests.router.data import ALL, ROUTED

OPERATOR = {"Authorization": "Bearer operator-token"}


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str) -> Service:
    await load_records(dsn, ALL)
    return await service_factory()


async def test_route_answers_the_decision_for_any_written_form(svc: Service) -> None:
    for written in (ROUTED, "+7 (916) 123-45-67", "8 916 123 45 67"):
        resp = await svc.client.get("/route", params={"number": written})
        assert resp.status == 200
        assert await resp.json() == {"number": ROUTED, "client_id": "10", "employee_id": "1",
                                     "extension": "101"}


@pytest.mark.parametrize(
    ("number", "reason"),
    [("79990000000", "no_client"), ("79160000004", "no_extension"),
     ("79160000005", "no_active_responsible")],
)
async def test_route_without_a_responsible_is_404_with_the_reason(
    svc: Service, number: str, reason: str
) -> None:
    resp = await svc.client.get("/route", params={"number": number})
    assert resp.status == 404
    assert await resp.json() == {"number": number, "reason": reason}


@pytest.mark.parametrize("params", [{"number": "12"}, {"number": "abc"}, {},
                                    {"number": ROUTED, "account": "nobody"}])
async def test_route_refuses_bad_numbers_and_unknown_accounts(
    svc: Service, params: dict[str, str]
) -> None:
    resp = await svc.client.get("/route", params=params)
    assert resp.status == 400


async def test_health_and_readiness(svc: Service) -> None:
    assert (await svc.client.get("/healthz")).status == 200
    ready = await svc.client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["phones"] == 7


async def test_metrics_expose_the_documented_names(svc: Service) -> None:
    await svc.event("events/call", call_event("e1", ROUTED))
    await svc.pbx.wait_routes(1)
    text = await metrics_showing(
        svc, 'mango_router_pbx_commands_total{account="default",result="1000"} 1.0')
    assert 'mango_router_decisions_total{account="default",outcome="routed"} 1.0' in text
    assert "mango_router_route_latency_seconds_bucket" in text
    assert 'mango_router_pbx_commands_total{account="default",result="1000"} 1.0' in text
    assert 'mango_router_index_phones{account="default"} 7.0' in text
    assert 'mango_router_events_total{account="default",kind="call"}' in text
    assert ROUTED not in text  # labels never carry a number


async def test_settings_need_a_token(svc: Service) -> None:
    assert (await svc.client.get("/api/settings")).status == 401
    bad = await svc.client.get("/api/settings", headers={"Authorization": "Bearer nope"})
    assert bad.status == 403


async def test_settings_default_to_the_protocol_values(svc: Service) -> None:
    resp = await svc.client.get("/api/settings", headers=OPERATOR)
    assert resp.status == 200
    assert await resp.json() == Settings().to_json()
    assert (await resp.json())["route_to_responsible"] is True


async def test_settings_put_replaces_only_the_keys_sent(svc: Service) -> None:
    resp = await svc.client.put("/api/settings", headers=OPERATOR,
                                json={"dry_run": True, "default_region": "KZ"})
    assert resp.status == 200
    after = await (await svc.client.get("/api/settings", headers=OPERATOR)).json()
    assert after == {**Settings().to_json(), "dry_run": True, "default_region": "KZ"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dry_run": "yes"}, "dry_run"),
        ({"accepted_incoming": "everything"}, "accepted_incoming"),
        ({"accepted_incoming": "client_and_deal"}, "accepted_deal"),
        ({"missed_in_ivr": {"enabled": True, "employee_id": None}}, "missed_in_ivr.employee_id"),
        ({"missed_in_group": {"enabled": True, "employee_id": "999"}},
         "missed_in_group.employee_id"),
        ({"accepted_deal": {"program_id": "1", "state_id": "2"},
          "accepted_incoming": "client_and_deal"}, "accepted_deal"),
        ({"colour": "red"}, "colour"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"route_lines": ["74951112233", "line one"]}, "route_lines"),
        ({"route_unknown_to_last_contact": {"enabled": True, "within_hours": 721}},
         "route_unknown_to_last_contact.within_hours"),
    ],
)
async def test_settings_put_names_the_bad_field_and_changes_nothing(
    svc: Service, body: dict[str, object], field: str
) -> None:
    resp = await svc.client.put("/api/settings", headers=OPERATOR,
                                json={"source_line": True, **body})
    assert resp.status == 400
    assert (await resp.json())["field"] == field
    after = await (await svc.client.get("/api/settings", headers=OPERATOR)).json()
    assert after == Settings().to_json()


async def test_settings_put_takes_the_routing_settings_and_get_shows_them(svc: Service) -> None:
    body = {"skip_busy_responsible": True, "route_lines": ["+7 (495) 111-22-33"],
            "route_unknown_to_last_contact": {"enabled": True, "within_hours": 24}}
    resp = await svc.client.put("/api/settings", headers=OPERATOR, json=body)
    assert resp.status == 200
    assert await resp.json() == {**Settings().to_json(), **body}
    after = await (await svc.client.get("/api/settings", headers=OPERATOR)).json()
    assert after == {**Settings().to_json(), **body}


async def test_settings_put_accepts_known_employee_and_deal(svc: Service, dsn: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        account = await con.fetchval("SELECT id FROM accounts WHERE name = 'default'")
        await con.execute("INSERT INTO programs (account_id, crm_id, name) VALUES ($1, '7', 'P')",
                          account)
        await con.execute("INSERT INTO program_states (account_id, program_id, crm_id, name)"
                          " VALUES ($1, '7', '70', 'New')", account)
    finally:
        await con.close()
    resp = await svc.client.put("/api/settings", headers=OPERATOR, json={
        "missed_incoming": "client_and_deal",
        "missed_deal": {"program_id": "7", "state_id": "70"},
        "missed_in_ivr": {"enabled": True, "employee_id": "1"},
    })
    assert resp.status == 200, await resp.text()


async def test_account_token_reaches_its_own_settings_only(svc: Service, dsn: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        token = await add_account(con, name="acme", mango_api_key="acme-key",
                                  mango_api_salt="acme-salt", mango_api_url="http://x/")
    finally:
        await con.close()
    own = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 3.0
    while True:  # a new account reaches the running service (within a second; slow CI)
        resp = await svc.client.get("/api/settings", params={"account": "acme"}, headers=own)
        if resp.status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert resp.status == 200
    other = await svc.client.get("/api/settings", headers=own)  # the default account
    assert other.status == 403
    # Nor can it tell an account that does not exist from one it may not open,
    # and a caller with no token learns nothing: only the operator is told.
    for path in ("/api/settings", "/api/calls", "/api/calls/some-entry", "/api/health"):
        ghost = await svc.client.get(path, params={"account": "ghost"}, headers=own)
        assert ghost.status == 403, path
        anonymous = await svc.client.get(path, params={"account": "ghost"})
        assert anonymous.status == 401, path
        operator = await svc.client.get(path, params={"account": "ghost"}, headers=OPERATOR)
        assert operator.status == 400, path
    for method, path, body in (("PUT", "/api/settings", {"dry_run": True}),
                               ("PUT", "/api/employees/1/extension", {"extension": "101"})):
        put = await svc.client.request(method, path, params={"account": "ghost"},
                                       headers=own, json=body)
        assert put.status == 403, path
    named = await svc.client.get("/api/accounts/ghost/sync", headers=own)
    assert named.status == 403
    assert (await svc.client.get("/api/accounts/ghost/sync")).status == 401
    assert (await svc.client.get("/api/accounts/ghost/sync", headers=OPERATOR)).status == 404


async def test_settings_saved_on_one_replica_act_on_another(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, ALL)
    first, second = await service_factory(), await service_factory()
    resp = await first.client.put("/api/settings", headers=OPERATOR, json={"dry_run": True})
    assert resp.status == 200
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        got = await (await second.client.get("/api/settings", headers=OPERATOR)).json()
        if got["dry_run"]:
            break
        await asyncio.sleep(0.02)
    assert got["dry_run"] is True


async def test_concurrent_settings_puts_of_different_keys_both_stay(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, ALL)
    first, second = await service_factory(), await service_factory()
    results = await asyncio.gather(
        first.client.put("/api/settings", headers=OPERATOR, json={"dry_run": True}),
        second.client.put("/api/settings", headers=OPERATOR, json={"source_line": True}),
    )
    assert [r.status for r in results] == [200, 200]
    con = await asyncpg.connect(dsn)
    try:
        stored = await con.fetchval("SELECT settings FROM accounts WHERE name = 'default'")
    finally:
        await con.close()
    saved = Settings.from_stored(orjson.loads(stored))
    assert (saved.dry_run, saved.source_line) == (True, True)


async def test_an_account_with_no_crm_shows_no_sync_lag(service: Service) -> None:
    metrics = await (await service.client.get("/metrics")).text()
    assert "mango_router_sync_lag_seconds{" not in metrics

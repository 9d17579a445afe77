"""Sync inside serve: the real app polling the Megaplan emulator, with the PBX emulator's
users, on a real database; changes reach routing through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from emulators.megaplan import MegaplanState, generate, serve_megaplan
from emulators.megaplan_store import CT_EMPLOYEE
from emulators.pbx import PbxState
from emulators.pbx_users import users_for
from lookup.phones import phone_key
from sync.poller import LOCK_CLASS
from tests.conftest import Service, ServiceFactory

OPERATOR = {"Authorization": "Bearer operator-token"}
POLL_S = 0.3


@pytest.fixture
async def crm(pbx: tuple[PbxState, str]) -> AsyncIterator[tuple[MegaplanState, str]]:
    state = generate(300, seed=3)
    pbx[0].users = users_for(state.employees.values())
    async with serve_megaplan(state) as url:
        yield state, url


@pytest.fixture
async def synced(service_factory: ServiceFactory,
                 crm: tuple[MegaplanState, str]) -> Callable[[], Awaitable[Service]]:
    async def make() -> Service:
        svc = await service_factory(MEGAPLAN_URL=crm[1], MEGAPLAN_USERNAME="demo",
                                    MEGAPLAN_PASSWORD="demo", MEGAPLAN_RATE="1000",
                                    MEGAPLAN_POLL_SECONDS=str(POLL_S))
        await wait_for(lambda: _full_done(svc), within=20)
        return svc
    return make


async def _full_done(svc: Service) -> bool:
    resp = await svc.client.get("/api/accounts/default/sync", headers=OPERATOR)
    body = await resp.json()
    return resp.status == 200 and body["full"]["finished_at"] is not None


async def wait_for(check: Callable[[], Awaitable[bool]], *, within: float) -> float:
    """Seconds until ``check`` holds; fails the test after ``within``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "condition not met in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def _number(state: MegaplanState, client_id: str) -> str:
    return str(phone_key(state.clients[client_id].phones[0]))


async def _route(svc: Service, number: str) -> dict[str, Any]:
    resp = await svc.client.get("/route", params={"number": number})
    body: dict[str, Any] = await resp.json()
    return body


def _routable(state: MegaplanState) -> tuple[str, str, str]:
    """A client whose first responsible is an active employee with an extension, and
    another such employee: (client id, its employee id, another employee id)."""
    good = [e for e in state.employees.values() if e.active and e.extension]
    for row in sorted(state.clients.values(), key=lambda r: int(r.id)):
        if (not row.is_dropped and row.responsibles
                and row.responsibles[0][0] == CT_EMPLOYEE
                and row.responsibles[0][1] in {e.id for e in good}
                and len(state.clients_by_phone(row.phones[0])) == 1):
            other = next(e.id for e in good if e.id != row.responsibles[0][1])
            return row.id, row.responsibles[0][1], other
    raise AssertionError("no routable client")


async def test_serve_syncs_an_empty_copy_at_start_and_routes_from_it(
    synced: Callable[[], Awaitable[Service]], crm: tuple[MegaplanState, str]
) -> None:
    svc = await synced()
    state = crm[0]
    client_id, employee_id, _ = _routable(state)
    number = _number(state, client_id)

    async def routed() -> bool:  # the index follows the committed sync within a second
        return "client_id" in await _route(svc, number)

    await wait_for(routed, within=1.0)
    body = await _route(svc, number)
    assert body["client_id"] == client_id
    assert body["employee_id"] == employee_id
    assert body["extension"] == state.employees[employee_id].extension


async def test_a_change_in_the_crm_reaches_routing_within_the_poll_interval_plus_a_second(
    synced: Callable[[], Awaitable[Service]], crm: tuple[MegaplanState, str]
) -> None:
    svc = await synced()
    state = crm[0]
    client_id, first, other = _routable(state)
    number = _number(state, client_id)
    delays = []
    for target in (other, first, other):
        state.set_responsibles(client_id, [(CT_EMPLOYEE, target)])
        extension = state.employees[target].extension

        async def moved(ext: str | None = extension) -> bool:
            return (await _route(svc, number)).get("extension") == ext

        delays.append(await wait_for(moved, within=POLL_S + 1.0 + 1.0))
    assert max(delays) < POLL_S + 1.0, delays


async def test_dropped_clients_and_fired_employees_stop_being_routed_to(
    synced: Callable[[], Awaitable[Service]], crm: tuple[MegaplanState, str]
) -> None:
    svc = await synced()
    state = crm[0]
    client_id, employee_id, _ = _routable(state)
    number = _number(state, client_id)
    others = [c for c in state.clients.values() if not c.is_dropped
              and c.responsibles == [(CT_EMPLOYEE, employee_id)] and c.id != client_id
              and len(state.clients_by_phone(c.phones[0])) == 1]
    state.drop_client(client_id)
    state.fire_employee(employee_id)

    async def gone() -> bool:
        return (await _route(svc, number)).get("reason") == "no_client"

    await wait_for(gone, within=POLL_S + 2.0)
    if others:  # the employee's change lands in its own transaction: allow it a moment
        other_number = _number(state, others[0].id)

        async def unrouted() -> bool:
            return (await _route(svc, other_number)).get("reason") == "no_active_responsible"

        await wait_for(unrouted, within=POLL_S + 2.0)


async def test_crm_down_or_slow_never_touches_routing(
    synced: Callable[[], Awaitable[Service]], crm: tuple[MegaplanState, str]
) -> None:
    svc = await synced()
    state = crm[0]
    client_id, employee_id, other = _routable(state)
    number = _number(state, client_id)
    state.faults.latency_ms = 300
    state.faults.error_rate = 1.0
    await asyncio.sleep(POLL_S * 3)
    for _ in range(20):
        started = time.monotonic()
        body = await _route(svc, number)
        assert time.monotonic() - started < 0.25
        assert body["employee_id"] == employee_id

    async def failure_told() -> bool:
        resp = await svc.client.get("/api/accounts/default/sync", headers=OPERATOR)
        return (await resp.json())["last_error"] is not None

    await wait_for(failure_told, within=10)
    state.set_responsibles(client_id, [(CT_EMPLOYEE, other)])
    state.faults.latency_ms = 0
    state.faults.error_rate = 0.0

    async def resumed() -> bool:
        return (await _route(svc, number)).get("employee_id") == other

    await wait_for(resumed, within=10)


async def test_sync_status_needs_an_admin_token_and_reports_the_passes(
    synced: Callable[[], Awaitable[Service]], crm: tuple[MegaplanState, str]
) -> None:
    svc = await synced()
    assert (await svc.client.get("/api/accounts/default/sync")).status == 401
    assert (await svc.client.get("/api/accounts/default/sync",
                                 headers={"Authorization": "Bearer nope"})).status == 403
    assert (await svc.client.get("/api/accounts/nobody/sync", headers=OPERATOR)).status == 404

    async def incremental_done() -> bool:
        resp = await svc.client.get("/api/accounts/default/sync", headers=OPERATOR)
        return (await resp.json())["incremental"]["finished_at"] is not None

    await wait_for(incremental_done, within=5)
    body = await (await svc.client.get("/api/accounts/default/sync", headers=OPERATOR)).json()
    assert body["configured"] is True
    assert body["full"]["clients"] == 300
    assert body["full"]["employees"] == len(crm[0].employees)
    assert body["full"]["requests"] >= 3
    assert 0 <= body["lag_seconds"] < 5
    assert body["last_error"] is None
    metrics = await (await svc.client.get("/metrics")).text()
    for name in ('mango_router_sync_duration_seconds_count{account="default",kind="full"}',
                 'mango_router_sync_records_total{account="default",kind="clients"}',
                 'mango_router_sync_lag_seconds{account="default"}'):
        assert name in metrics


async def test_an_extension_set_by_hand_wins_over_the_pbx_until_handed_back(
    synced: Callable[[], Awaitable[Service]], crm: tuple[MegaplanState, str]
) -> None:
    svc = await synced()
    state = crm[0]
    client_id, employee_id, _ = _routable(state)
    number = _number(state, client_id)
    path = f"/api/employees/{employee_id}/extension"
    assert (await svc.client.put(path, json={"extension": "555"})).status == 401
    assert (await svc.client.put(path, json={"extension": "5a"}, headers=OPERATOR)).status == 400
    assert (await svc.client.put("/api/employees/42/extension", json={"extension": "1"},
                                 headers=OPERATOR)).status == 404
    resp = await svc.client.put(path, json={"extension": "555"}, headers=OPERATOR)
    assert resp.status == 200
    assert (await resp.json())["manual"] is True

    async def routed_to(ext: str | None) -> bool:
        return (await _route(svc, number)).get("extension") == ext

    await wait_for(lambda: routed_to("555"), within=1.0)
    await asyncio.sleep(POLL_S * 3)  # a few polls: the PBX match does not undo it
    assert await routed_to("555")
    resp = await svc.client.put(path, json={"extension": None}, headers=OPERATOR)
    assert resp.status == 200
    await wait_for(lambda: routed_to(state.employees[employee_id].extension),
                   within=POLL_S + 1.0 + 1.0)


async def test_only_one_replica_polls_an_account(
    synced: Callable[[], Awaitable[Service]], crm: tuple[MegaplanState, str]
) -> None:
    first = await synced()
    second = await synced()
    con = await asyncpg.connect(first.dsn)
    try:
        holders = await con.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = $1::bigint::oid", LOCK_CLASS)
    finally:
        await con.close()
    assert holders == 1
    state = crm[0]
    client_id, _, other = _routable(state)
    state.set_responsibles(client_id, [(CT_EMPLOYEE, other)])
    number = _number(state, client_id)
    for svc in (first, second):
        async def moved(s: Service = svc) -> bool:
            return (await _route(s, number)).get("employee_id") == other
        await wait_for(moved, within=POLL_S + 2.0)


async def test_a_full_pass_that_keeps_failing_does_not_freeze_the_copy(
    synced: Callable[[], Awaitable[Service]], crm: tuple[MegaplanState, str]
) -> None:
    svc = await synced()
    state = crm[0]
    client_id, _, other = _routable(state)
    number = _number(state, client_id)
    # The night's full pass is due, and the CRM cannot serve its second page of clients,
    # however often it is asked; the first page (all an incremental pass needs) it serves.
    refused: list[str] = []

    def second_page(request: web.Request) -> bool:
        if "/contractor" in request.path and "pageAfter" in request.query_string:
            refused.append(request.path)
            return True
        return False

    state.faults.error_status = 500
    state.faults.error_when = second_page
    con = await asyncpg.connect(svc.dsn)
    try:
        await con.execute("UPDATE sync_state SET full_pending = true")
    finally:
        await con.close()

    async def full_failed() -> bool:
        resp = await svc.client.get("/api/accounts/default/sync", headers=OPERATOR)
        error = (await resp.json())["last_error"]
        return error is not None and error["message"].startswith("full sync")

    await wait_for(full_failed, within=30)
    state.set_responsibles(client_id, [(CT_EMPLOYEE, other)])

    async def moved() -> bool:
        return (await _route(svc, number)).get("employee_id") == other

    await wait_for(moved, within=30)
    attempts = len(refused)

    async def retried() -> bool:  # the full pass is still tried (each try: 5 requests)
        return len(refused) > attempts

    await wait_for(retried, within=30)
    body = await (await svc.client.get("/api/accounts/default/sync", headers=OPERATOR)).json()
    assert body["full"]["running_or_interrupted"] is True

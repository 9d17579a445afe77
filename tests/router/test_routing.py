"""The hot path end to end: real app, real database, PBX emulator over HTTP."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import orjson
import pytest

from cli.logs import JsonFormatter
from router.keys import ACCOUNTS, REPLICAS, ROUTER
from router.replicas import LOCK_CLASS
from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED, UNKNOWN


async def decisions(dsn: str, count: int, within: float = 3.0) -> list[asyncpg.Record]:
    """The decision rows once ``count`` are there (they are written in batches)."""
    con = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while True:
            rows = await con.fetch("SELECT * FROM decisions ORDER BY id")
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.02)
    finally:
        await con.close()


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str) -> Service:
    await load_records(dsn, ALL)
    return await service_factory()


@pytest.mark.parametrize(
    ("number", "extension"),
    [
        (ROUTED, "101"),
        ("79160000002", "102"),  # a client set as responsible is skipped
        ("79160000003", "102"),  # a blocked employee is skipped
        ("79160000006", "102"),  # smallest CRM id (9 before 20)
    ],
)
async def test_known_caller_is_routed_to_the_first_active_responsible(
    svc: Service, number: str, extension: str
) -> None:
    status, _ = await svc.event("events/call", call_event("e1", number))
    assert status == 200
    routes = await svc.pbx.wait_routes(1)
    assert len(routes) == 1
    assert routes[0].payload["to_number"] == extension
    assert routes[0].payload["call_id"] == "e1-ivr"
    assert routes[0].payload["command_id"]


async def test_route_command_is_signed_with_the_account_key_and_salt(svc: Service) -> None:
    await svc.event("events/call", call_event("e1", ROUTED))
    await svc.pbx.wait_routes(1)
    assert svc.pbx.bad_signatures == 0
    # the emulator records a command only after checking its sign
    assert len(svc.pbx.routes()) == 1


@pytest.mark.parametrize(
    ("number", "outcome"),
    [
        (UNKNOWN, "no_client"),
        ("79160000004", "no_extension"),
        ("79160000005", "no_active_responsible"),
    ],
)
async def test_caller_without_a_route_gets_no_command_and_a_recorded_reason(
    svc: Service, dsn: str, number: str, outcome: str
) -> None:
    await svc.event("events/call", call_event("e1", number))
    rows = await decisions(svc.dsn, 1)
    assert [r["outcome"] for r in rows] == [outcome]
    assert svc.pbx.routes() == []


async def test_every_command_id_is_unique(svc: Service) -> None:
    for i in range(5):
        await svc.event("events/call", call_event(f"e{i}", ROUTED))
    routes = await svc.pbx.wait_routes(5)
    assert len({r.payload["command_id"] for r in routes}) == 5


async def test_repeated_trigger_routes_once(svc: Service) -> None:
    body = call_event("e1", ROUTED)
    results = await asyncio.gather(*(svc.event("events/call", body) for _ in range(5)))
    assert all(status == 200 for status, _ in results)
    await svc.pbx.wait_routes(2, within=0.5)
    assert len(svc.pbx.routes()) == 1


async def test_same_entry_with_another_leg_routes_once(svc: Service) -> None:
    await svc.event("events/call", call_event("e1", ROUTED, call_id="leg-a"))
    await svc.event("events/call", call_event("e1", ROUTED, call_id="leg-b", seq=2))
    await svc.pbx.wait_routes(2, within=0.5)
    assert len(svc.pbx.routes()) == 1


async def test_routed_leg_coming_back_with_our_command_id_is_not_a_trigger(
    svc: Service,
) -> None:
    # The emulator posts result/route and the new abonent leg with our command_id.
    await svc.event("events/call", call_event("e1", ROUTED))
    routes = await svc.pbx.wait_routes(1)
    comeback = call_event("e1", ROUTED, call_id="e1-new-leg", seq=3,
                          command_id=routes[0].payload["command_id"])
    await svc.event("events/call", comeback)
    await svc.pbx.wait_routes(2, within=0.5)
    assert len(svc.pbx.routes()) == 1


async def test_the_emulators_after_route_callbacks_are_accepted_and_journaled(
    svc: Service, dsn: str
) -> None:
    # what the emulator posts must pass the strict event model, or routing tests lie
    await svc.event("events/call", call_event("e1", ROUTED))
    command_id = (await svc.pbx.wait_routes(1))[0].payload["command_id"]
    con = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 3.0
        while True:
            rows = await con.fetch("SELECT kind, entry_id, call_id, payload FROM call_events"
                                   " ORDER BY id")
            if len(rows) >= 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
    finally:
        await con.close()
    assert [(r["kind"], r["entry_id"], r["call_id"]) for r in rows] == [
        ("call", "e1", "e1-ivr"), ("result", None, None),
        ("call", "e1", f"routed-{command_id}")]
    assert orjson.loads(rows[2]["payload"])["to"] == {"extension": "101"}


async def test_trigger_after_its_disconnect_is_not_routed(svc: Service, dsn: str) -> None:
    await svc.event("events/call", call_event("e1", ROUTED, seq=2, state="Disconnected"))
    await svc.event("events/call", call_event("e1", ROUTED, seq=1))
    rows = await decisions(dsn, 1)
    assert [r["outcome"] for r in rows] == ["ended"]
    assert svc.pbx.routes() == []


async def test_trigger_after_the_entry_summary_is_not_routed(svc: Service, dsn: str) -> None:
    await svc.event("events/summary", {"entry_id": "e1", "call_direction": 1,
                                       "entry_result": 0, "from": {"number": ROUTED}})
    await svc.event("events/call", call_event("e1", ROUTED))
    rows = await decisions(dsn, 1)
    assert [r["outcome"] for r in rows] == ["ended"]


@pytest.mark.parametrize(
    "event",
    [
        call_event("e1", ROUTED, state="Connected"),
        call_event("e1", ROUTED, location="abonent"),
        {**call_event("e1", ROUTED), "from": {"extension": "101", "number": ROUTED}},
        {**call_event("e1", ROUTED), "from": {}},
    ],
    ids=["not-appeared", "not-in-ivr", "from-an-extension", "no-caller-number"],
)
async def test_events_that_are_not_the_trigger_route_nothing(
    svc: Service, event: dict[str, object]
) -> None:
    status, _ = await svc.event("events/call", event)
    assert status == 200
    await svc.pbx.wait_routes(1, within=0.3)
    assert svc.pbx.routes() == []


async def test_routing_off_in_settings_routes_nothing(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, ALL)
    svc = await service_factory()
    resp = await svc.client.put("/api/settings", json={"route_to_responsible": False},
                                headers={"Authorization": "Bearer operator-token"})
    assert resp.status == 200
    await svc.event("events/call", call_event("e1", ROUTED))
    await svc.pbx.wait_routes(1, within=0.3)
    assert svc.pbx.routes() == []


async def test_dry_run_decides_and_records_but_sends_nothing(svc: Service, dsn: str) -> None:
    resp = await svc.client.put("/api/settings", json={"dry_run": True},
                                headers={"Authorization": "Bearer operator-token"})
    assert resp.status == 200
    await svc.event("events/call", call_event("e1", ROUTED))
    rows = await decisions(dsn, 1)
    assert [(r["outcome"], r["extension"]) for r in rows] == [("dry_run", "101")]
    assert svc.pbx.routes() == []


@pytest.mark.parametrize(
    ("http_status", "result", "outcome"),
    [
        (500, 1000, "pbx_http_5xx"),
        (429, 1000, "pbx_rate_limited"),
        (200, 3102, "pbx_rejected"),
        (302, 1000, "pbx_redirect"),  # not followed: the command was not applied
    ],
)
async def test_pbx_refusal_is_recorded_and_not_retried(
    svc: Service, dsn: str, http_status: int, result: int, outcome: str
) -> None:
    svc.pbx.behaviour.http_status = http_status
    svc.pbx.behaviour.result = result
    await svc.event("events/call", call_event("e1", ROUTED))
    rows = await decisions(dsn, 1)
    assert [r["outcome"] for r in rows] == [outcome]
    await svc.pbx.wait_routes(2, within=0.3)
    assert len(svc.pbx.routes()) == 1


async def test_routed_decision_records_extension_result_and_latency(
    svc: Service, dsn: str
) -> None:
    await svc.event("events/call", call_event("e1", ROUTED))
    rows = await decisions(dsn, 1)
    row = rows[0]
    assert (row["outcome"], row["extension"], row["client_id"], row["employee_id"]) == (
        "routed", "101", "10", "1")
    assert (row["pbx_status"], row["pbx_result"]) == (200, 1000)
    assert 0 < row["latency_us"] < 1_500_000
    assert row["command_id"] == svc.pbx.routes()[0].payload["command_id"]


async def test_slow_pbx_does_not_delay_the_answer_to_the_pbx(svc: Service, dsn: str) -> None:
    svc.pbx.behaviour.delay_ms = 2500  # longer than the command timeout
    started = time.monotonic()
    status, _ = await svc.event("events/call", call_event("e1", ROUTED))
    assert status == 200
    assert time.monotonic() - started < 1.0
    rows = await decisions(dsn, 1, within=5)
    assert [r["outcome"] for r in rows] == ["pbx_timeout"]


async def test_trigger_past_the_deadline_sends_nothing(svc: Service, dsn: str) -> None:
    app = svc.client.app
    assert app is not None
    account = app[ACCOUNTS].by_name("default")
    assert account is not None
    from mango.events import CallEvent

    long_ago = time.monotonic() - 10  # the greeting is over
    await app[ROUTER].route(account, CallEvent(call_event("e1", ROUTED)), long_ago)
    rows = await decisions(dsn, 1)
    assert [r["outcome"] for r in rows] == ["late"]
    assert svc.pbx.routes() == []


async def test_route_goes_on_from_memory_when_the_claim_cannot_be_made(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, ALL)
    con = await asyncpg.connect(dsn)
    # another replica runs (so this one claims before it routes)
    await con.execute("SELECT pg_advisory_lock_shared($1, 0)", LOCK_CLASS)
    svc = await service_factory()
    assert not svc.client.app[REPLICAS].solo
    try:
        async with con.transaction():
            # Hold the claim table: the shared claim cannot answer within its few ms.
            await con.execute("LOCK TABLE route_claims IN ACCESS EXCLUSIVE MODE")
            await svc.event("events/call", call_event("e1", ROUTED))
            routes = await svc.pbx.wait_routes(1, within=1.0)
    finally:
        await con.close()
    assert [r.payload["to_number"] for r in routes] == ["101"]


async def _routed_records(caplog: pytest.LogCaptureFixture, within: float = 3.0
                          ) -> list[logging.LogRecord]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = [r for r in caplog.records if r.name == "router.routing"
                 and r.getMessage() == "call routed"]
        if found:
            return found
        await asyncio.sleep(0.02)
    return []


async def test_a_routed_call_is_logged_at_info_with_the_callers_number_masked(
    svc: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="router.routing")
    await svc.event("events/call", call_event("e-log", ROUTED))
    await svc.pbx.wait_routes(1)
    [record] = await _routed_records(caplog)
    assert record.levelno == logging.INFO
    line = orjson.loads(JsonFormatter().format(record))  # as `serve` writes it
    assert line["level"] == "info"
    assert line["account"] == "default"
    assert line["entry_id"] == "e-log"
    assert (line["extension"], line["employee_id"]) == ("101", "1")
    assert line["caller"] == "***4567"
    assert line["latency_ms"] >= 0
    assert line["pbx_ms"] >= 0
    assert line["command_id"] == svc.pbx.routes()[0].payload["command_id"]
    assert ROUTED not in caplog.text
    assert ROUTED not in JsonFormatter().format(record)


async def test_no_routed_line_is_logged_below_info(
    svc: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="router.routing")
    await svc.event("events/call", call_event("e-quiet", ROUTED))
    await svc.pbx.wait_routes(1)
    await asyncio.sleep(0.05)
    assert not [r for r in caplog.records if r.getMessage() == "call routed"]

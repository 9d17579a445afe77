"""Busy-aware routing (``skip_busy_responsible``) through the real webhooks: an
employee on a call, on whichever replica that call's legs arrived, is passed over."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from router.app import STATE_LISTENER
from router.keys import ACCOUNTS, PRESENCE
from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import EMPLOYEES, client
from tests.router.test_routing import decisions

OPERATOR = {"Authorization": "Bearer operator-token"}
TWO = "79160000030"  # responsibles: Anna (101), then Boris (102)
ANNA_ONLY = "79160000031"
NO_EXT_SECOND = "79160000032"  # Anna (101), Gleb (no extension), Boris (102)
OUTSIDE = "79990000001"
RECORDS = [*EMPLOYEES,
           client("30", [TWO], ("employee", "1"), ("employee", "2")),
           client("31", [ANNA_ONLY], ("employee", "1")),
           client("32", [NO_EXT_SECOND], ("employee", "1"), ("employee", "4"), ("employee", "2"))]


async def start(service_factory: ServiceFactory, dsn: str, count: int = 1,
                busy_on: bool = True) -> list[Service]:
    await load_records(dsn, RECORDS)
    services = [await service_factory() for _ in range(count)]
    if busy_on:
        await settings_everywhere(services, {"skip_busy_responsible": True})
    return services


async def settings_everywhere(services: list[Service], body: dict[str, Any]) -> None:
    """PUT on the first replica, and wait until every replica acts on it."""
    resp = await services[0].client.put("/api/settings", headers=OPERATOR, json=body)
    assert resp.status == 200, await resp.text()
    for svc in services:
        assert await until(lambda svc=svc: all(
            svc.client.app[ACCOUNTS].by_name("default").settings.to_json()[k] == v
            for k, v in body.items()))


async def until(check: Any, within: float = 3.0, step: float = 0.005) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def busy(svc: Service, extension: str) -> bool:
    app = svc.client.app
    account = app[ACCOUNTS].by_name("default")
    assert account is not None
    return extension in app[PRESENCE].busy(account.id)


def answered(entry: str, extension: str, state: str = "Connected", seq: int = 2
             ) -> dict[str, Any]:
    """An abonent leg of an incoming call, ringing the employee's extension."""
    return call_event(entry, OUTSIDE, seq=seq, state=state, location="abonent",
                      call_id=f"{entry}-{extension}", to={"extension": extension})


async def routed_to(svc: Service, count: int) -> list[str]:
    return [r.payload["to_number"] for r in await svc.pbx.wait_routes(count)]


async def test_with_the_setting_off_a_busy_responsible_still_gets_the_call(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn, busy_on=False)
    await svc.event("events/call", answered("x1", "101"))
    assert await until(lambda: busy(svc, "101"))
    await svc.event("events/call", call_event("e1", TWO))
    assert await routed_to(svc, 1) == ["101"]


async def test_a_busy_responsible_is_passed_over_for_the_next_free_one(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await svc.event("events/call", answered("x1", "101"))
    assert await until(lambda: busy(svc, "101"))
    await svc.event("events/call", call_event("e1", TWO))
    assert await routed_to(svc, 1) == ["102"]
    [row] = await decisions(dsn, 1)
    assert (row["outcome"], row["employee_id"], row["extension"], row["via"]) == (
        "routed", "2", "102", "next_free")
    body = await (await svc.client.get("/api/calls/e1", headers=OPERATOR)).json()
    assert (body["decision"]["via"], body["decision"]["extension"]) == ("next_free", "102")


async def test_a_responsible_is_free_again_once_the_leg_disconnects(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await svc.event("events/call", answered("x1", "101"))
    await svc.event("events/call", answered("x1", "101", "OnHold", seq=3))
    assert await until(lambda: busy(svc, "101"))
    await svc.event("events/call", answered("x1", "101", "Disconnected", seq=4))
    assert await until(lambda: not busy(svc, "101"))
    await svc.event("events/call", call_event("e1", TWO))
    assert await routed_to(svc, 1) == ["101"]
    [row] = await decisions(dsn, 1)
    assert row["via"] is None


async def test_with_every_responsible_busy_nothing_is_sent_and_the_outcome_is_busy(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await svc.event("events/call", answered("x1", "101"))
    await svc.event("events/call", answered("x2", "102"))
    assert await until(lambda: busy(svc, "101") and busy(svc, "102"))
    await svc.event("events/call", call_event("e1", TWO))
    await svc.event("events/call", call_event("e2", ANNA_ONLY))
    rows = await decisions(dsn, 2)
    assert sorted((r["entry_id"], r["outcome"], r["client_id"], r["employee_id"])
                  for r in rows) == [("e1", "busy", "30", "1"), ("e2", "busy", "31", "1")]
    await svc.pbx.wait_routes(1, within=0.3)
    assert svc.pbx.routes() == []
    body = await (await svc.client.get("/api/calls/e1", headers=OPERATOR)).json()
    assert (body["decision"]["outcome"], body["decision"]["routed"]) == ("busy", False)
    metrics = await (await svc.client.get("/metrics")).text()
    assert 'mango_router_decisions_total{account="default",outcome="busy"} 2.0' in metrics


async def test_the_caller_of_an_outgoing_call_is_busy(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    outgoing = call_event("o1", OUTSIDE, seq=2, state="Connected", location="abonent",
                          call_id="o1-leg", to={"number": OUTSIDE},
                          **{"from": {"extension": "101"}})
    await svc.event("events/call", outgoing)
    assert await until(lambda: busy(svc, "101"))
    await svc.event("events/call", call_event("e1", TWO))
    assert await routed_to(svc, 1) == ["102"]


async def test_a_responsible_without_an_extension_after_a_busy_one_stops_the_walk(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await svc.event("events/call", answered("x1", "101"))
    assert await until(lambda: busy(svc, "101"))
    await svc.event("events/call", call_event("e1", NO_EXT_SECOND))
    [row] = await decisions(dsn, 1)
    assert (row["outcome"], row["employee_id"]) == ("no_extension", "4")


async def test_a_leg_posted_to_one_replica_makes_the_other_skip_that_employee(
    service_factory: ServiceFactory, dsn: str
) -> None:
    first, second = await start(service_factory, dsn, count=2)
    await first.event("events/call", answered("x1", "101"))
    assert await until(lambda: busy(second, "101"), within=5.0)
    await second.event("events/call", call_event("e1", TWO))
    assert await routed_to(second, 1) == ["102"]
    # and the end, posted to the other replica, frees Anna on the first
    await second.event("events/call", answered("x1", "101", "Disconnected", seq=4))
    assert await until(lambda: not busy(first, "101"), within=5.0)
    await first.event("events/call", call_event("e2", TWO))
    assert await routed_to(first, 2) == ["102", "101"]


async def test_busy_employees_are_still_busy_after_a_restart(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await svc.event("events/call", answered("x1", "101"))
    assert await until(lambda: busy(svc, "101"))
    await svc.client.close()
    again = await service_factory()
    assert busy(again, "101")  # loaded before the app serves
    await again.event("events/call", call_event("e1", TWO))
    assert await routed_to(again, 1) == ["102"]


async def test_a_change_missed_while_the_listener_was_away_is_read_after_it_reconnects(
    service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection
) -> None:
    [svc] = await start(service_factory, dsn)
    await svc.event("events/call", answered("x1", "101"))
    assert await until(lambda: busy(svc, "101"))
    # the leg ends while nobody listens (no notification): only a resync can tell
    await db.execute("UPDATE busy_legs SET ended = true")
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE application_name = $1", STATE_LISTENER)
    assert await until(lambda: not busy(svc, "101"), within=5.0)


async def test_every_start_and_end_of_a_call_reaches_the_other_replica(
    service_factory: ServiceFactory, dsn: str
) -> None:
    """Connected and Disconnected in turn, posted to one replica: the other's busy set
    (which routing reads) follows each. How soon: ``python -m bench.busy``."""
    first, second = await start(service_factory, dsn, count=2)
    for i in range(20):
        await first.event("events/call", answered(f"x{i}", "101"))
        assert await until(lambda: busy(second, "101"), within=5.0)
        await first.event("events/call", answered(f"x{i}", "101", "Disconnected", seq=4))
        assert await until(lambda: not busy(second, "101"), within=5.0)

"""``route_lines``: only calls to the listed company lines are routed, whatever the form."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED
from tests.router.test_routing import decisions

OPERATOR = {"Authorization": "Bearer operator-token"}
SALES = "74951112233"  # call_event's default line
SUPPORT = "74957778899"


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str) -> Service:
    await load_records(dsn, ALL)
    return await service_factory()


async def put_settings(svc: Service, body: dict[str, Any]) -> None:
    resp = await svc.client.put("/api/settings", headers=OPERATOR, json=body)
    assert resp.status == 200, await resp.text()


def to_line(entry: str, line: str | None, number: str | None = None) -> dict[str, Any]:
    to: dict[str, str] = {}
    if number is not None:
        to["number"] = number
    if line is not None:
        to["line_number"] = line
    return call_event(entry, ROUTED, to=to)


async def test_every_line_is_routed_while_the_list_is_empty(svc: Service) -> None:
    await svc.event("events/call", to_line("e1", SUPPORT, SUPPORT))
    assert [r.payload["to_number"] for r in await svc.pbx.wait_routes(1)] == ["101"]


@pytest.mark.parametrize("written", ["+7 (495) 111-22-33", "8 495 111-22-33", "4951112233",
                                     SALES])
async def test_a_listed_line_in_any_written_form_is_routed(svc: Service, written: str) -> None:
    await put_settings(svc, {"route_lines": [SUPPORT, written]})
    await svc.event("events/call", to_line("e1", SALES, SALES))
    assert [r.payload["to_number"] for r in await svc.pbx.wait_routes(1)] == ["101"]


async def test_a_call_to_another_line_is_not_routed_and_says_why(svc: Service, dsn: str) -> None:
    await put_settings(svc, {"route_lines": ["+7 (495) 111-22-33"]})
    await svc.event("events/call", to_line("e1", SUPPORT, SUPPORT))
    rows = await decisions(dsn, 1)
    assert [(r["outcome"], r["number"], r["extension"]) for r in rows] == [
        ("other_line", ROUTED, None)]
    await svc.pbx.wait_routes(1, within=0.3)
    assert svc.pbx.routes() == []
    body = await (await svc.client.get("/api/calls/e1", headers=OPERATOR)).json()
    assert body["decision"]["outcome"] == "other_line"
    assert body["decision"]["routed"] is False
    metrics = await (await svc.client.get("/metrics")).text()
    assert 'mango_router_decisions_total{account="default",outcome="other_line"} 1.0' in metrics


async def test_the_line_number_wins_over_the_number_dialled(svc: Service, dsn: str) -> None:
    await put_settings(svc, {"route_lines": [SALES]})
    await svc.event("events/call", to_line("e1", line=SUPPORT, number=SALES))
    await svc.event("events/call", to_line("e2", line=SALES, number=SUPPORT))
    routes = await svc.pbx.wait_routes(1)
    assert [r.payload["call_id"] for r in routes] == ["e2-ivr"]
    rows = await decisions(dsn, 2)
    assert sorted(r["outcome"] for r in rows) == ["other_line", "routed"]


async def test_without_a_line_number_the_number_dialled_is_the_line(svc: Service) -> None:
    await put_settings(svc, {"route_lines": ["8 (495) 111-22-33"]})
    await svc.event("events/call", to_line("e1", line=None, number=SALES))
    assert [r.payload["to_number"] for r in await svc.pbx.wait_routes(1)] == ["101"]


async def test_a_trigger_naming_no_line_is_not_routed_while_lines_are_listed(
    svc: Service, dsn: str
) -> None:
    await put_settings(svc, {"route_lines": [SALES]})
    await svc.event("events/call", to_line("e1", line=None, number=None))
    rows = await decisions(dsn, 1)
    assert [r["outcome"] for r in rows] == ["other_line"]


async def test_emptying_the_list_routes_every_line_again(svc: Service) -> None:
    await put_settings(svc, {"route_lines": [SALES]})
    await put_settings(svc, {"route_lines": []})
    await svc.event("events/call", to_line("e1", SUPPORT, SUPPORT))
    assert len(await svc.pbx.wait_routes(1)) == 1

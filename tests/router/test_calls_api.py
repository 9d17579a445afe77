"""``/api/calls``: a call's events, its routing decision and the PBX's final result."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED

OPERATOR = {"Authorization": "Bearer operator-token"}


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str) -> Service:
    await load_records(dsn, ALL)
    return await service_factory()


async def _call(svc: Service, entry: str, within: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        resp = await svc.client.get(f"/api/calls/{entry}", headers=OPERATOR)
        body: dict[str, Any] = await resp.json()
        done = resp.status == 200 and body["decision"] and body["decision"]["final_result"]
        if done or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def test_call_shows_events_in_seq_order_and_the_routing_decision(svc: Service) -> None:
    await svc.event("events/call", call_event("e1", ROUTED, seq=1))
    await svc.event("events/call", call_event("e1", ROUTED, seq=3, state="Disconnected"))
    await svc.pbx.wait_routes(1)
    body = await _call(svc, "e1")
    assert [e["seq"] for e in body["events"] if e["kind"] == "call"][:1] == [1]
    seqs = [e["seq"] for e in body["events"] if e["kind"] == "call"]
    assert seqs == sorted(seqs)
    decision = body["decision"]
    assert (decision["outcome"], decision["extension"], decision["pbx_result"]) == (
        "routed", "101", 1000)
    assert decision["final_result"] == 1000  # posted later by the PBX to /mango/result/route
    assert decision["latency_us"] > 0
    assert body["crm_actions"] == []


async def test_a_call_whose_entry_id_has_a_slash_is_found_written_either_way(
    svc: Service,
) -> None:
    entry = "MTox/MDA2+MzQ2=="  # base64, as the PBX's ids are: "/" and "+" in it
    await svc.event("events/call", call_event(entry, "79990000001"))
    for path in (f"/api/calls/{entry}", "/api/calls/MTox%2FMDA2%2BMzQ2%3D%3D"):
        resp = await svc.client.get(path, headers=OPERATOR)
        assert resp.status == 200, path
        assert (await resp.json())["entry_id"] == entry, path
    missing = await svc.client.get("/api/calls/MTox/other", headers=OPERATOR)
    assert (missing.status, await missing.json()) == (404, {"error": "no such call"})


async def test_calls_list_newest_first_and_filtered_by_number(svc: Service) -> None:
    await svc.event("events/call", call_event("old", "79990000001"))
    await svc.event("events/call", call_event("new", ROUTED))
    resp = await svc.client.get("/api/calls", headers=OPERATOR)
    assert [c["entry_id"] for c in await resp.json()] == ["new", "old"]
    resp = await svc.client.get("/api/calls", params={"number": "8 999 000-00-01"},
                                headers=OPERATOR)
    assert [c["entry_id"] for c in await resp.json()] == ["old"]


async def test_calls_need_a_token_and_refuse_bad_queries(svc: Service) -> None:
    assert (await svc.client.get("/api/calls")).status == 401
    assert (await svc.client.get("/api/calls", params={"limit": "0"},
                                 headers=OPERATOR)).status == 400
    assert (await svc.client.get("/api/calls", params={"number": "x"},
                                 headers=OPERATOR)).status == 400
    assert (await svc.client.get("/api/calls/nope", headers=OPERATOR)).status == 404

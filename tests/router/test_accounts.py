"""Accounts are isolated: the same caller number routes within each account's own data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from emulators.pbx import PbxCaller, PbxState, create_pbx_app
from lookup.accounts import add_account, remove_account
from tests.conftest import Service, ServiceFactory, call_event, load_records, metrics_showing
from tests.router.data import ALL, ROUTED, client


@dataclass
class Acme:
    """A second account, ``acme``, with its own PBX emulator and its own data: the same
    caller number as the default account's client, routed to extension 555."""

    pbx: PbxState
    id: int

    def caller(self, svc: Service) -> PbxCaller:
        assert svc.client.session is not None
        return PbxCaller(svc.client.session, str(svc.client.make_url("/mango")),
                         api_key="acme-key", salt="acme-salt")


@pytest.fixture
async def acme(dsn: str, db: asyncpg.Connection) -> AsyncIterator[Acme]:
    await load_records(dsn, ALL)  # default: ROUTED -> extension 101
    pbx = PbxState(api_key="acme-key", salt="acme-salt")
    server = TestServer(create_pbx_app(pbx))
    await server.start_server()
    await add_account(db, name="acme", mango_api_key="acme-key", mango_api_salt="acme-salt",
                      mango_api_url=str(server.make_url("/vpbx/")))
    acme_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'acme'")
    await load_records(dsn, [
        {"type": "employee", "id": "1", "name": "Acme's own", "extension": "555",
         "active": True},
        client("10", ["+7 (916) 123-45-67"], ("employee", "1")),
    ], account_id=acme_id)
    yield Acme(pbx, acme_id)
    await server.close()


async def test_same_caller_number_routes_within_each_account(
    service_factory: ServiceFactory, acme: Acme
) -> None:
    svc: Service = await service_factory()
    acme_caller = acme.caller(svc)
    await svc.event("events/call", call_event("d1", ROUTED))
    deadline = time.monotonic() + 2
    while True:  # the account may reach the running service just after start
        status, _ = await acme_caller.post("events/call", call_event("a1", ROUTED))
        if status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert status == 200

    default_routes = await svc.pbx.wait_routes(1)
    acme_routes = await acme.pbx.wait_routes(1)
    assert [r.payload["to_number"] for r in default_routes] == ["101"]
    assert [r.payload["to_number"] for r in acme_routes] == ["555"]
    for account, expected in (("default", "101"), ("acme", "555")):
        resp = await svc.client.get("/route", params={"number": ROUTED, "account": account})
        assert (await resp.json())["extension"] == expected


async def test_metrics_are_per_account_and_a_removed_accounts_series_go(
    service_factory: ServiceFactory, acme: Acme, db: asyncpg.Connection
) -> None:
    svc: Service = await service_factory()
    acme_caller = acme.caller(svc)
    await svc.event("events/call", call_event("d1", ROUTED))
    assert (await acme_caller.post("events/call", call_event("a1", ROUTED)))[0] == 200
    await acme_caller.post("events/call", call_event("a2", "79990000000"))
    await svc.pbx.wait_routes(1)
    await acme.pbx.wait_routes(1)
    wanted = ('mango_router_decisions_total{account="default",outcome="routed"} 1.0',
              'mango_router_decisions_total{account="acme",outcome="routed"} 1.0',
              'mango_router_decisions_total{account="acme",outcome="no_client"} 1.0',
              'mango_router_pbx_commands_total{account="acme",result="1000"} 1.0',
              'mango_router_events_total{account="acme",kind="call"} 2.0',
              'mango_router_index_phones{account="default"} 7.0',
              'mango_router_index_phones{account="acme"} 1.0')
    text = await metrics_showing(svc, *wanted)
    for line in wanted:
        assert line in text, line

    assert await remove_account(db, "acme")
    deadline = time.monotonic() + 3
    while 'account="acme"' in (text := await (await svc.client.get("/metrics")).text()):
        assert time.monotonic() < deadline, "the removed account's series stayed"
        await asyncio.sleep(0.05)
    assert 'mango_router_decisions_total{account="default",outcome="routed"} 1.0' in text
    assert 'mango_router_index_phones{account="default"} 7.0' in text

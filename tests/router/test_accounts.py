"""Accounts are isolated: the same caller number routes within each account's own data."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiohttp.test_utils import TestServer

from emulators.pbx import PbxCaller, PbxState, create_pbx_app
from lookup.accounts import add_account
from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED, client


async def test_same_caller_number_routes_within_each_account(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, ALL)  # default: ROUTED -> extension 101
    acme_pbx = PbxState(api_key="acme-key", salt="acme-salt")
    acme_server = TestServer(create_pbx_app(acme_pbx))
    await acme_server.start_server()
    try:
        con = await asyncpg.connect(dsn)
        try:
            await add_account(con, name="acme", mango_api_key="acme-key",
                              mango_api_salt="acme-salt",
                              mango_api_url=str(acme_server.make_url("/vpbx/")))
            acme = await con.fetchval("SELECT id FROM accounts WHERE name = 'acme'")
        finally:
            await con.close()
        await load_records(dsn, [
            {"type": "employee", "id": "1", "name": "Acme's own", "extension": "555",
             "active": True},
            client("10", ["+7 (916) 123-45-67"], ("employee", "1")),
        ], account_id=acme)
        svc: Service = await service_factory()
        assert svc.client.session is not None
        acme_caller = PbxCaller(svc.client.session, str(svc.client.make_url("/mango")),
                                api_key="acme-key", salt="acme-salt")

        await svc.event("events/call", call_event("d1", ROUTED))
        deadline = time.monotonic() + 2
        while True:  # the account may reach the running service just after start
            status, _ = await acme_caller.post("events/call", call_event("a1", ROUTED))
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == 200

        default_routes = await svc.pbx.wait_routes(1)
        acme_routes = await acme_pbx.wait_routes(1)
        assert [r.payload["to_number"] for r in default_routes] == ["101"]
        assert [r.payload["to_number"] for r in acme_routes] == ["555"]
        for account, expected in (("default", "101"), ("acme", "555")):
            resp = await svc.client.get("/route", params={"number": ROUTED, "account": account})
            assert (await resp.json())["extension"] == expected
    finally:
        await acme_server.close()

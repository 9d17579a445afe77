"""The real app with a CRM: the Megaplan emulator synced into the copy, the PBX emulator's
users matched to its employees, calls posted through the real webhooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from automation.call_model import JournalEvent
from emulators.megaplan import MegaplanState
from emulators.pbx import PbxState
from emulators.pbx_users import users_for
from tests.conftest import PASSWORD, Service, ServiceFactory

_PATHS = {"call": "events/call", "summary": "events/summary", "recording": "events/recording",
          "dtmf": "events/dtmf"}


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time allowed")
        await asyncio.sleep(0.05)


@dataclass
class Crm:
    """The service under test, its CRM and its database."""

    svc: Service
    mp: MegaplanState
    db: asyncpg.Connection
    extensions: list[tuple[str, str]]  # (extension, employee id) of active employees

    def employee(self, i: int) -> str:
        return self.extensions[i][1]

    def ext(self, i: int) -> str:
        return self.extensions[i][0]

    async def settings(self, **values: Any) -> None:
        resp = await self.svc.client.put("/api/settings", json=values,
                                         headers={"Authorization": "Bearer operator-token"})
        assert resp.status == 200, await resp.text()

    async def play(self, events: Iterable[JournalEvent]) -> None:
        for e in events:
            status, text = await self.svc.event(_PATHS[e.kind], dict(e.payload))
            assert status == 200, text

    async def actions(self, entry_id: str) -> list[dict[str, Any]]:
        resp = await self.svc.client.get(f"/api/calls/{entry_id}",
                                         headers={"Authorization": "Bearer operator-token"})
        assert resp.status == 200, await resp.text()
        found: list[dict[str, Any]] = (await resp.json())["crm_actions"]
        return found

    async def settled(self, entry_id: str, count: int, *, within: float = 15.0
                      ) -> list[dict[str, Any]]:
        """The call's actions once ``count`` are planned and none is pending."""
        async def done() -> bool:
            got = await self.actions(entry_id)
            return len(got) >= count and all(a["state"] != "pending" for a in got)

        await eventually(done, within=within)
        return await self.actions(entry_id)

    async def route(self, number: str) -> dict[str, Any]:
        resp = await self.svc.client.get("/route", params={"number": number})
        body: dict[str, Any] = await resp.json()
        return body


CrmFactory = Callable[..., Awaitable[Crm]]


@pytest.fixture
async def crm_factory(mp_state: MegaplanState, mp_url: str, pbx: tuple[PbxState, str],
                      service_factory: ServiceFactory, db: asyncpg.Connection
                      ) -> CrmFactory:
    pbx[0].users = users_for(mp_state.employees.values())

    async def make(**env: str) -> Crm:
        svc = await service_factory(
            MEGAPLAN_URL=mp_url, MEGAPLAN_USERNAME="demo", MEGAPLAN_PASSWORD=PASSWORD,
            MEGAPLAN_RATE="1000", MEGAPLAN_POLL_SECONDS="3600", **env)

        async def synced() -> bool:  # the copy is empty, so the first pass is a full one
            return bool(await db.fetchval(
                "SELECT full_finished_at IS NOT NULL FROM sync_state"))

        await eventually(synced, within=30)
        rows = await db.fetch("SELECT extension, crm_id FROM employees WHERE active"
                              " AND extension IS NOT NULL ORDER BY crm_id")
        crm = Crm(svc=svc, mp=mp_state, db=db,
                  extensions=[(r["extension"], r["crm_id"]) for r in rows])
        await crm.settings(route_to_responsible=False)  # these tests are about the CRM
        return crm

    return make


@pytest.fixture
async def crm(crm_factory: CrmFactory) -> Crm:
    return await crm_factory()

"""The real app with a CRM: the Megaplan emulator synced into the copy, the PBX emulator's
users matched to its employees, calls posted through the real webhooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from automation.actions import ActionApplier
from automation.call_model import JournalEvent
from emulators.megaplan import MegaplanState
from emulators.pbx import PbxState
from emulators.pbx_users import users_for
from lookup.accounts import Account, fetch_accounts, upsert_default_account
from lookup.outbox import ActionRow, NewAction, claim_due, complete, plan, retry_later
from megaplan.client import MegaplanClient
from sync.account import megaplan_credentials
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

    async def routed_to(self, number: str, expected: str, *, within: float = 2.0
                        ) -> str | None:
        """The employee the index routes ``number`` to, polled until it is ``expected`` or
        ``within`` seconds pass: the index follows the copy by LISTEN/NOTIFY, so it
        catches up a moment after an action is done, not in the same instant."""
        deadline = time.monotonic() + within
        while True:
            got = (await self.route(number)).get("employee_id")
            if got == expected or time.monotonic() > deadline:
                return None if got is None else str(got)
            await asyncio.sleep(0.02)


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


# --- the outbox without the app --------------------------------------------------------------
DEAL_NAME = "Пропущенный вызов 10:00 01.03.2024"  # a client's calls in one minute: one name


@dataclass
class Outbox:
    """An account with a CRM, its outbox in the database, one known client and employee."""

    mp: MegaplanState
    pool: asyncpg.Pool
    account: Account
    client_id: str
    manager_id: str

    def applier(self, crm: MegaplanClient) -> ActionApplier:
        return ActionApplier(crm, self.pool, self.account)

    def new_deal(self, entry_id: str, **payload: Any) -> NewAction:
        """A create_deal for the client (``client_id`` in ``payload``: another one's)."""
        return NewAction(entry_id=entry_id, action="create_deal", payload={
            "client_id": self.client_id, "program_id": "1", "state_id": "1",
            "manager_id": self.manager_id, "name": DEAL_NAME, "only_if_none_open": False,
            **payload})

    async def deal(self, entry_id: str, **payload: Any) -> ActionRow:
        """A planned create_deal for the client, claimed."""
        async with self.pool.acquire() as con:
            action_id, _ = await plan(con, self.account.id, self.new_deal(entry_id, **payload))
            [row] = [r for r in await claim_due(con, self.account.id, limit=100, lease_s=600)
                     if r.id == action_id]
        return row

    async def uncertain_again(self, row: ActionRow) -> ActionRow:
        """The row as the worker claims it after an attempt that may have landed."""
        async with self.pool.acquire() as con:
            await retry_later(con, row.id, error="timeout", delay_s=0, uncertain=True)
            await con.execute("UPDATE crm_actions SET due_at = now() WHERE id = $1", row.id)
            [again] = [r for r in await claim_due(con, self.account.id, limit=100, lease_s=600)
                       if r.id == row.id]
        assert again.uncertain
        return again

    async def complete(self, row: ActionRow, crm_id: str | None) -> None:
        async with self.pool.acquire() as con:
            await complete(con, row.id, crm_id=crm_id)


@pytest.fixture
async def outbox(dsn: str, mp_state: MegaplanState, mp_url: str) -> AsyncIterator[Outbox]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    async with pool.acquire() as con:
        await upsert_default_account(con, mango_api_key="k", mango_api_salt="s",
                                     mango_api_url="http://127.0.0.1:1/vpbx/",
                                     megaplan=(mp_url, "demo", PASSWORD))
        [account] = await fetch_accounts(con)
    client = next(c for c in mp_state.clients.values() if not c.is_dropped)
    manager = next(e for e in mp_state.employees.values() if e.active)
    yield Outbox(mp=mp_state, pool=pool, account=account, client_id=client.id,
                 manager_id=manager.id)
    await pool.close()


def crm_client(rig: Outbox) -> MegaplanClient:
    """A client of the account's CRM with no rate cap and no retries (each fault shows)."""
    credentials = megaplan_credentials(rig.account)
    assert credentials is not None
    return MegaplanClient(credentials, rate_per_second=None, max_retries=0)

"""Deals applied once: the look-before-create of an uncertain deal finds its own deal and
no other, and one client's deals are made one at a time (the Megaplan emulator as a real
server, the outbox in a real database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from automation.actions import ActionApplier
from emulators.megaplan import MegaplanState
from lookup.accounts import Account, fetch_accounts, upsert_default_account
from lookup.outbox import ActionRow, NewAction, claim_due, complete, plan, retry_later
from megaplan.client import MegaplanClient
from megaplan.errors import MegaplanUncertainError
from sync.account import megaplan_credentials
from tests.conftest import PASSWORD

NAME = "Пропущенный вызов 10:00 01.03.2024"  # a client's calls in one minute: one name


@dataclass
class Rig:
    mp: MegaplanState
    pool: asyncpg.Pool
    account: Account
    client_id: str
    manager_id: str

    def applier(self, crm: MegaplanClient) -> ActionApplier:
        return ActionApplier(crm, self.pool, self.account)

    async def deal(self, entry_id: str, **payload: Any) -> ActionRow:
        """A planned create_deal for the client, claimed."""
        async with self.pool.acquire() as con:
            action_id, _ = await plan(con, self.account.id, NewAction(
                entry_id=entry_id, action="create_deal", payload={
                    "client_id": self.client_id, "program_id": "1", "state_id": "1",
                    "manager_id": self.manager_id, "name": NAME, "only_if_none_open": False,
                    **payload}))
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
async def rig(dsn: str, mp_state: MegaplanState, mp_url: str) -> AsyncIterator[Rig]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    async with pool.acquire() as con:
        await upsert_default_account(con, mango_api_key="k", mango_api_salt="s",
                                     mango_api_url="http://127.0.0.1:1/vpbx/",
                                     megaplan=(mp_url, "demo", PASSWORD))
        [account] = await fetch_accounts(con)
    client = next(c for c in mp_state.clients.values() if not c.is_dropped)
    manager = next(e for e in mp_state.employees.values() if e.active)
    yield Rig(mp=mp_state, pool=pool, account=account, client_id=client.id,
              manager_id=manager.id)
    await pool.close()


def crm_client(rig: Rig) -> MegaplanClient:
    credentials = megaplan_credentials(rig.account)
    assert credentials is not None
    return MegaplanClient(credentials, rate_per_second=None, max_retries=0)


async def test_an_uncertain_deal_that_landed_is_found_not_made_again(rig: Rig) -> None:
    async with crm_client(rig) as crm:
        applier = rig.applier(crm)
        row = await rig.deal("call-1")
        rig.mp.faults.lost_answer_count = 1  # made, and its answer lost
        with pytest.raises(MegaplanUncertainError):
            await applier.apply(row)
        crm_id, note = await applier.apply(await rig.uncertain_again(row))
    [deal] = rig.mp.deals.values()
    assert (crm_id, note) == (deal["id"], "made by an earlier attempt")


async def test_an_uncertain_deal_is_not_taken_for_the_deal_of_another_call_in_that_minute(
    rig: Rig,
) -> None:
    async with crm_client(rig) as crm:
        first = await rig.deal("call-1")
        made, _ = await rig.applier(crm).apply(first)
        await rig.complete(first, made)
        second = await rig.deal("call-2")
        rig.mp.faults.write_error_count = 1  # refused before it was made: nothing landed
        with pytest.raises(MegaplanUncertainError):
            await rig.applier(crm).apply(second)
        # after a restart: the worker knows the first deal from the outbox only
        crm_id, note = await rig.applier(crm).apply(await rig.uncertain_again(second))
    assert len(rig.mp.deals) == 2
    assert crm_id != made
    assert note is None


async def test_a_deal_just_made_for_another_call_is_not_taken_before_it_is_recorded(
    rig: Rig,
) -> None:
    async with crm_client(rig) as crm:
        applier = rig.applier(crm)
        first, second = await rig.deal("call-1"), await rig.deal("call-2")
        rig.mp.faults.write_error_count = 1
        with pytest.raises(MegaplanUncertainError):
            await applier.apply(second)
        made, _ = await applier.apply(first)  # made; the worker has not recorded it yet
        crm_id, _ = await applier.apply(await rig.uncertain_again(second))
    assert len(rig.mp.deals) == 2
    assert crm_id != made


async def test_calls_of_one_client_at_once_make_one_deal_when_only_if_none_open(
    rig: Rig,
) -> None:
    rig.mp.faults.latency_ms = 50  # both would look before either made its deal
    async with crm_client(rig) as crm:
        applier = rig.applier(crm)
        rows = [await rig.deal(f"call-{n}", only_if_none_open=True) for n in range(3)]
        results = await asyncio.gather(*(applier.apply(r) for r in rows))
    assert len(rig.mp.deals) == 1
    assert sorted(note or "" for _, note in results) == [
        "", "the client has an open deal", "the client has an open deal"]

"""Which notifications send a call to the planner: a known client's call only when it
ends (nothing it does in the CRM happens before), a new number's at answer too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from automation.engine import CallAutomation
from cache.accounts import AccountRegistry
from cache.index import IndexRegistry
from cache.loader import load_account_index
from mango.events import CallEvent
from tests.conftest import call_event, load_records
from tests.router.data import ALL, ROUTED

NEW = "79990001122"


@dataclass
class Planner:
    automation: CallAutomation
    account_id: int

    def wants(self, kind: str, call: CallEvent | None, account_id: int | None = None) -> bool:
        return self.automation.worth_planning(
            self.account_id if account_id is None else account_id, kind, call)


@pytest.fixture
async def planner(dsn: str, db: asyncpg.Connection) -> AsyncIterator[Planner]:
    await load_records(dsn, ALL)
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    indexes = IndexRegistry()
    indexes.put(account_id, await load_account_index(db, account_id))
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=1)  # never used here
    yield Planner(CallAutomation(pool, AccountRegistry(), indexes=indexes), account_id)
    await pool.close()


def answered(number: str) -> CallEvent:
    return CallEvent(call_event("E1", number, state="Connected", location="abonent",
                                to={"extension": "101"}))


def dialled(number: str) -> CallEvent:
    body = call_event("E1", number, state="Appeared", location="abonent")
    body.update({"from": {"extension": "101"}, "to": {"number": number}})
    return CallEvent(body)


async def test_a_known_clients_call_is_planned_when_it_ends_not_when_answered(
    planner: Planner,
) -> None:
    assert planner.wants("call", answered(NEW))  # a client to make now
    assert not planner.wants("call", answered(ROUTED))
    assert planner.wants("summary", None)  # every call, when it ends
    assert planner.wants("recording", None)


async def test_an_outgoing_call_is_planned_at_once_only_to_a_new_number(
    planner: Planner,
) -> None:
    assert planner.wants("call", dialled(NEW))
    assert not planner.wants("call", dialled(ROUTED))


async def test_without_its_index_every_trigger_is_planned(planner: Planner) -> None:
    assert planner.wants("call", answered(ROUTED), account_id=999)

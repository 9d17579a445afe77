"""``lookup.calls``: a call's events, its decision and the PBX's final word, from the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import orjson
import pytest

from lookup.accounts import add_account, upsert_default_account
from lookup.calls import find_call, recent_calls
from lookup.decisions import DecisionRecord, write_decisions
from lookup.journal import JournalEntry, write_journal
from tests.conftest import call_event

CALLER = "79161234567"
OTHER = "79990000001"


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def account(db: asyncpg.Connection) -> int:
    account_id: int = await upsert_default_account(
        db, mango_api_key="test-key", mango_api_salt="test-salt",
        mango_api_url="http://127.0.0.1:1/vpbx/", megaplan=(None, None, None))
    return account_id


async def _event(pool: asyncpg.Pool, account_id: int, entry: str, number: str, *,
                 seq: int = 1, state: str = "Appeared") -> None:
    body = call_event(entry, number, seq=seq, state=state)
    await write_journal(pool, [JournalEntry(account_id, "call", entry, body["call_id"], seq,
                                            state, "ivr", orjson.dumps(body).decode())])


async def _result(pool: asyncpg.Pool, account_id: int, command_id: str, result: int) -> None:
    raw = orjson.dumps({"command_id": command_id, "result": result}).decode()
    await write_journal(pool, [JournalEntry(account_id, "result", None, None, None, None, None,
                                            raw)])


def _decision(account_id: int, entry: str, command_id: str | None, outcome: str = "routed"
              ) -> DecisionRecord:
    return DecisionRecord(account_id=account_id, entry_id=entry, call_id=f"{entry}-ivr",
                          number=CALLER, outcome=outcome, employee_id="1", extension="101",
                          command_id=command_id, pbx_status=200, pbx_result=1000,
                          latency_us=850)


async def test_recent_calls_are_newest_first_by_their_start(
    pool: asyncpg.Pool, account: int
) -> None:
    for entry in ("a", "b", "c"):
        await _event(pool, account, entry, CALLER)
    await _event(pool, account, "a", CALLER, seq=2, state="Disconnected")  # a ends last
    calls = await recent_calls(pool, account, number=None, limit=50)
    assert [c["entry_id"] for c in calls] == ["c", "b", "a"]  # a later event moves no call
    assert [c["entry_id"] for c in await recent_calls(pool, account, number=None, limit=2)] == [
        "c", "b"]
    assert [e["seq"] for e in calls[2]["events"]] == [1, 2]


async def test_recent_calls_filter_by_either_end_and_keep_to_the_account(
    pool: asyncpg.Pool, db: asyncpg.Connection, account: int
) -> None:
    await _event(pool, account, "mine", CALLER)
    await _event(pool, account, "other", OTHER)
    await add_account(db, name="acme", mango_api_key="acme-key", mango_api_salt="s",
                      mango_api_url="http://x/")
    acme = await db.fetchval("SELECT id FROM accounts WHERE name = 'acme'")
    await _event(pool, acme, "theirs", CALLER)
    mine = await recent_calls(pool, account, number=CALLER, limit=50)
    assert [c["entry_id"] for c in mine] == ["mine"]
    to_line = await recent_calls(pool, account, number="74951112233", limit=50)  # the "to" end
    assert {c["entry_id"] for c in to_line} == {"mine", "other"}
    assert await recent_calls(pool, account, number="70000000000", limit=50) == []


async def test_a_call_has_its_events_in_seq_order_its_first_decision_and_the_final_result(
    pool: asyncpg.Pool, account: int
) -> None:
    await _event(pool, account, "e1", CALLER, seq=3, state="Disconnected")
    await _event(pool, account, "e1", CALLER, seq=1)
    await write_decisions(pool, [_decision(account, "e1", "cmd-1")])
    await write_decisions(pool, [_decision(account, "e1", None, outcome="claimed_elsewhere")])
    await _result(pool, account, "cmd-1", 1000)
    found = await find_call(pool, account, "e1")
    assert found is not None
    assert set(found) == {"entry_id", "events", "decision", "crm_actions"}
    assert (found["entry_id"], found["crm_actions"]) == ("e1", [])
    assert [(e["seq"], e["call_state"]) for e in found["events"]] == [
        (1, "Appeared"), (3, "Disconnected")]
    event = found["events"][0]
    assert set(event) == {"kind", "seq", "call_id", "call_state", "location", "received_at",
                          "payload"}
    assert event["payload"]["from"] == {"number": CALLER}
    assert isinstance(event["received_at"], datetime)
    decision = found["decision"]
    assert set(decision) == {"outcome", "routed", "reason", "number", "client_id",
                             "client_name", "employee_id", "employee_name", "extension", "via",
                             "command_id", "pbx_status", "pbx_result", "final_result",
                             "latency_us", "decided_at"}
    assert (decision["outcome"], decision["routed"], decision["command_id"],
            decision["final_result"], decision["latency_us"], decision["via"]) == (
        "routed", True, "cmd-1", 1000, 850, None)


async def test_a_call_decided_but_not_journalled_is_found_and_an_unknown_one_is_not(
    pool: asyncpg.Pool, account: int
) -> None:
    await write_decisions(pool, [_decision(account, "e2", "cmd-2", outcome="no_client")])
    found = await find_call(pool, account, "e2")
    assert found is not None
    assert found["events"] == []
    assert (found["decision"]["routed"], found["decision"]["final_result"]) == (False, None)
    assert await find_call(pool, account, "nope") is None
    assert await find_call(pool, account + 1, "e2") is None  # not another account's


async def test_an_entry_id_with_a_nul_names_no_call(pool: asyncpg.Pool, account: int) -> None:
    assert await find_call(pool, account, "a\x00b") is None  # PostgreSQL would refuse the text

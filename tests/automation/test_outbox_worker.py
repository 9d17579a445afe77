"""The outbox's worker keeps the CRM busy: what it claimed later is not held back by a
slow action of an earlier claim (the Megaplan emulator as a real server, a real
database)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime

import pytest

from automation.outbox import OutboxWorker
from lookup.accounts import Account
from lookup.outbox import NewAction, plan_many
from tests.automation.conftest import Outbox, eventually


class _Accounts:
    def __init__(self, account: Account) -> None:
        self._account = account

    def dry_run(self, on: bool) -> None:
        """The account's dry_run setting, as the admin turns it on or off."""
        self._account = replace(self._account,
                                settings=replace(self._account.settings, dry_run=on))

    def all(self) -> list[Account]:
        return [self._account]

    def by_id(self, account_id: int, /) -> Account | None:
        return self._account if account_id == self._account.id else None


@asynccontextmanager
async def _working(worker: OutboxWorker) -> AsyncIterator[OutboxWorker]:
    """The worker running for the block, stopped after it (as the service stops)."""
    running = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def _plan(outbox: Outbox, actions: list[NewAction]) -> None:
    async with outbox.pool.acquire() as con:
        await plan_many(con, outbox.account.id, actions)


async def _until_done(outbox: Outbox, entry_id: str, *, within: float) -> None:
    async def done() -> bool:
        return bool(await _done_at(outbox, [entry_id]))

    await eventually(done, within=within)


async def _done_at(outbox: Outbox, entries: list[str]) -> dict[str, datetime]:
    async with outbox.pool.acquire() as con:
        rows = await con.fetch("SELECT entry_id, done_at FROM crm_actions"
                               " WHERE entry_id = ANY($1::text[]) AND state = 'done'", entries)
    return {r["entry_id"]: r["done_at"] for r in rows}


async def test_a_slow_action_does_not_hold_back_the_actions_claimed_with_or_after_it(
    outbox: Outbox, dsn: str,
) -> None:
    clients = [c.id for c in outbox.mp.clients.values() if not c.is_dropped][:13]
    async with _working(OutboxWorker(dsn, outbox.pool, _Accounts(outbox.account), rate=1000,
                                     concurrency=2)):  # claims of 8, more claimed while 4 are left
        await _plan(outbox, [outbox.new_deal("warm")])
        await _until_done(outbox, "warm", within=15)  # the worker has its token, a deal made
        outbox.mp.faults.stall_count, outbox.mp.faults.stall_s = 1, 5.0
        entries = [f"call-{n}" for n in range(12)]
        async with outbox.pool.acquire() as con:
            await plan_many(con, outbox.account.id, [
                outbox.new_deal(e, client_id=c) for e, c in zip(entries, clients[1:], strict=True)])

        async def all_done() -> bool:
            return len(await _done_at(outbox, entries)) == len(entries)

        await eventually(all_done, within=30)
    done = sorted((await _done_at(outbox, entries)).values())
    stalled = done[-1]
    assert all((stalled - t).total_seconds() > 2.0 for t in done[:-1]), done
    assert len(outbox.mp.deals) == 13


async def test_an_action_whose_lease_runs_out_while_it_is_tried_is_not_tried_twice(
    outbox: Outbox, dsn: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A lease shorter than the CRM's answer, as a long Retry-After can make it: the
    # worker must not claim the deal again and make it a second time meanwhile.
    monkeypatch.setattr("automation.outbox._LEASE_S", 0.3)
    async with _working(OutboxWorker(dsn, outbox.pool, _Accounts(outbox.account), rate=1000)):
        await _plan(outbox, [outbox.new_deal("warm")])
        await _until_done(outbox, "warm", within=15)  # the worker has its token
        outbox.mp.faults.stall_count, outbox.mp.faults.stall_s = 1, 2.0
        await _plan(outbox, [outbox.new_deal("slow")])
        await _until_done(outbox, "slow", within=20)
        await asyncio.sleep(0.5)  # a second try, had there been one, lands too
    assert len(outbox.mp.deals) == 2  # warm and slow, once each
    async with outbox.pool.acquire() as con:
        attempts = await con.fetchval(
            "SELECT attempts FROM crm_actions WHERE entry_id = 'slow'")
    assert attempts == 1


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_refused_credentials_fail_no_action_and_the_account_waits_for_them(
    outbox: Outbox, dsn: str, monkeypatch: pytest.MonkeyPatch, status: int,
) -> None:
    # A changed password: whatever status the token request gets, the actions wait for
    # the credentials (not failed for good), without asking for a token again and again.
    monkeypatch.setattr("automation.outbox._AUTH_PAUSE_S", 3.0)
    monkeypatch.setattr("megaplan.client._REFUSED_AGAIN_S", 3.0)
    right, outbox.mp.password = outbox.mp.password, "changed"
    outbox.mp.bad_credentials_status = status
    async with _working(OutboxWorker(dsn, outbox.pool, _Accounts(outbox.account), rate=1000)):
        async with outbox.pool.acquire() as con:
            await plan_many(con, outbox.account.id,
                            [outbox.new_deal(f"locked-{n}") for n in range(5)])
        await asyncio.sleep(1.5)
        async with outbox.pool.acquire() as con:
            states = await con.fetch("SELECT state, last_error FROM crm_actions")
        assert {r["state"] for r in states} == {"pending"}
        assert any(r["last_error"] and str(status) in r["last_error"] for r in states)
        asked = outbox.mp.request_count
        assert asked <= 2  # paused after the refusal: not a token request an action
        outbox.mp.password = right  # the admin puts the right password back

        async def all_done() -> bool:
            return len(await _done_at(outbox, [f"locked-{n}" for n in range(5)])) == 5

        await eventually(all_done, within=15)
    assert len(outbox.mp.deals) == 5


@pytest.mark.parametrize("answer", [b'{"meta":{"status":200,"errors":[]},"data":{}}',
                                    b"<html>not JSON</html>"])
async def test_a_create_whose_answer_cannot_be_read_is_looked_for_not_failed_nor_made_twice(
    outbox: Outbox, dsn: str, answer: bytes,
) -> None:
    outbox.mp.faults.garbled_answer_count = 1  # made, and answered with what cannot be read
    outbox.mp.faults.garbled_answer = answer
    async with _working(OutboxWorker(dsn, outbox.pool, _Accounts(outbox.account), rate=1000)):
        await _plan(outbox, [outbox.new_deal("garbled")])
        await _until_done(outbox, "garbled", within=20)
    [deal] = outbox.mp.deals.values()
    async with outbox.pool.acquire() as con:
        [row] = await con.fetch("SELECT crm_id, note FROM crm_actions")
    assert (row["crm_id"], row["note"]) == (deal["id"], "made by an earlier attempt")


async def test_a_create_that_may_have_landed_is_looked_for_only_after_a_wait(
    outbox: Outbox, dsn: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # not a second after its 5xx: a CRM still at work on it would not show it yet
    monkeypatch.setattr("automation.outbox._UNCERTAIN_WAIT_S", 5.0)
    outbox.mp.faults.write_error_count = 1
    async with _working(OutboxWorker(dsn, outbox.pool, _Accounts(outbox.account), rate=1000)):
        await _plan(outbox, [outbox.new_deal("maybe")])

        async def tried() -> bool:
            async with outbox.pool.acquire() as con:
                return bool(await con.fetchval(
                    "SELECT last_error IS NOT NULL AND leased_at IS NULL FROM crm_actions"))

        await eventually(tried, within=15)
        async with outbox.pool.acquire() as con:
            wait = await con.fetchval(
                "SELECT extract(epoch FROM due_at - now())::float8 FROM crm_actions")
        assert wait > 3.5
        await _until_done(outbox, "maybe", within=15)
    assert len(outbox.mp.deals) == 1


async def test_actions_planned_before_dry_run_was_turned_on_wait_until_it_is_off(
    outbox: Outbox, dsn: str,
) -> None:
    accounts = _Accounts(outbox.account)
    accounts.dry_run(True)  # turned on with an action still pending
    async with _working(OutboxWorker(dsn, outbox.pool, accounts, rate=1000)):
        await _plan(outbox, [outbox.new_deal("before")])
        await asyncio.sleep(1.5)
        assert outbox.mp.deals == {}  # nothing written to the CRM while it is on
        assert await _done_at(outbox, ["before"]) == {}
        accounts.dry_run(False)
        await _until_done(outbox, "before", within=10)
    assert len(outbox.mp.deals) == 1


async def test_the_workers_crm_calls_are_heard_by_the_health_notes_failures_included(
    outbox: Outbox, dsn: str,
) -> None:
    heard: list[tuple[int, str | None]] = []
    outbox.mp.faults.write_error_count = 1  # the first create is answered 500
    async with _working(OutboxWorker(
            dsn, outbox.pool, _Accounts(outbox.account), rate=1000,
            health=lambda account_id, reason: heard.append((account_id, reason)))):
        await _plan(outbox, [outbox.new_deal("health")])
        await _until_done(outbox, "health", within=20)
    assert {account_id for account_id, _ in heard} == {outbox.account.id}
    failures = [reason for _, reason in heard if reason is not None]
    assert len(failures) == 1
    assert failures[0].startswith("Megaplan answered 500")
    assert heard[-1][1] is None  # the deal landed after


async def test_a_held_back_worker_claims_nothing_until_it_may(
    outbox: Outbox, dsn: str, caplog: pytest.LogCaptureFixture,
) -> None:
    held = True
    async with _working(OutboxWorker(dsn, outbox.pool, _Accounts(outbox.account), rate=1000,
                                     hold=lambda: held)):  # routing first: calls come fast
        await _plan(outbox, [outbox.new_deal("held")])
        await asyncio.sleep(1.5)
        assert await _done_at(outbox, ["held"]) == {}
        assert len(outbox.mp.deals) == 0
        # waiting with nothing under way is not a failure (it once restarted the loop,
        # its lock's connection and its CRM client every second)
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        held = False
        await _until_done(outbox, "held", within=10)


async def test_a_stopping_worker_gives_back_what_it_had_not_finished(
    outbox: Outbox, dsn: str,
) -> None:
    async with _working(OutboxWorker(dsn, outbox.pool, _Accounts(outbox.account), rate=1000,
                                     request_timeout=3.0)):
        await _plan(outbox, [outbox.new_deal("warm")])
        await _until_done(outbox, "warm", within=15)  # the worker has its token
        outbox.mp.faults.stall_count, outbox.mp.faults.stall_s = 1, 2.5
        await _plan(outbox, [outbox.new_deal("stalled")])

        async def claimed() -> bool:
            async with outbox.pool.acquire() as con:
                return bool(await con.fetchval(
                    "SELECT leased_at IS NOT NULL FROM crm_actions WHERE entry_id = 'stalled'"))

        await eventually(claimed, within=10)
    async with outbox.pool.acquire() as con:
        row = await con.fetchrow(
            """SELECT state, leased_at, extract(epoch FROM due_at - now()) AS due_in
               FROM crm_actions WHERE entry_id = 'stalled'""")
    assert row is not None
    assert row["state"] == "pending"
    assert row["leased_at"] is None
    # not the lease's 10 minutes, but not before the request cut short (which the CRM
    # still acts on, 2.5 s in) could have landed either: its request timeout, and 5 s
    assert 5.0 < row["due_in"] < 9.0

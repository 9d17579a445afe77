"""The background loops stop when cancelled, whenever the cancel comes.

On Python 3.11, ``asyncio.wait_for`` swallows a cancel that arrives in the loop
turn between the awaited event being set and ``wait_for`` waking: the loop goes
on, and the shutdown that awaits it hangs for good (a CI run hung so, in the
automation's loop, as the app closed right after a burst of calls). The loops
wait with ``asyncio.timeout`` instead; ruff bans ``asyncio.wait_for`` (TID251).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import pytest

from automation import engine
from automation.contacts import LastContacts
from automation.engine import CallAutomation
from cache.accounts import AccountRegistry
from lookup.accounts import Account
from lookup.settings import Settings
from router.calls_folder import CallsFolder
from router.stopping import finish_within, stop_tasks

_IDLE = 0.5  # long enough for a loop's start-up reads on an empty database


async def _stops_however_cancel_and_wake_meet(run: Callable[[], Coroutine[Any, Any, None]],
                                              wake: Callable[[], None]) -> None:
    for turns in range(6):
        task = asyncio.create_task(run())
        await asyncio.sleep(_IDLE)  # waiting to be woken
        assert not task.done()
        wake()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3.0)
        assert done, f"still running after a cancel {turns} loop turns after its wake"


@pytest.fixture
async def pool(dsn: str) -> Any:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_the_calls_folder_stops_when_cancelled_as_it_is_woken(
    pool: asyncpg.Pool
) -> None:
    folder = CallsFolder(pool)
    await _stops_however_cancel_and_wake_meet(folder.run, folder.poke)


async def test_the_automation_stops_when_cancelled_as_it_is_woken(pool: asyncpg.Pool) -> None:
    automation = CallAutomation(pool, AccountRegistry())
    await _stops_however_cancel_and_wake_meet(automation.run,
                                              lambda: automation.missed(time.time()))


async def test_the_last_contacts_stop_when_cancelled_as_they_are_woken(
    pool: asyncpg.Pool
) -> None:
    contacts = LastContacts(pool, AccountRegistry())
    await _stops_however_cancel_and_wake_meet(contacts.run, lambda: contacts.seen(1, "e1"))


class _OneAccount:
    def __init__(self, account: Account) -> None:
        self._account = account

    def all(self) -> list[Account]:
        return [self._account]

    def by_id(self, account_id: int, /) -> Account | None:
        return self._account if account_id == self._account.id else None


async def test_the_automation_stops_when_its_planning_connection_is_lost_as_it_is_cancelled(
    pool: asyncpg.Pool, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollback on the way out of the cancelled transaction fails (its connection is
    gone) and replaces the cancel with an error, which the loop retries after."""
    other = await asyncpg.connect(dsn)
    await other.execute("BEGIN; SELECT pg_advisory_xact_lock(42)")  # another replica's
    planning: list[Any] = []  # the pool's connection (a proxy)

    async def plan_entries(pool: asyncpg.Pool, *_args: Any, **_kwargs: Any) -> list[str]:
        async with pool.acquire() as con:
            planning.append(con)
            async with con.transaction():  # the shape of planning a new number's call
                await con.execute("SELECT pg_advisory_xact_lock(42)")  # waits for it
        return []

    monkeypatch.setattr(engine, "plan_entries", plan_entries)
    account = Account(id=1, name="default", mango_api_key="k", mango_api_salt="s",
                      mango_api_url="http://127.0.0.1:1/vpbx/",
                      megaplan_url="https://crm.example", megaplan_username="u",
                      megaplan_password="p", token_hash=None, settings=Settings())
    automation = CallAutomation(pool, _OneAccount(account))
    task = asyncio.create_task(automation.run())
    try:
        automation.seen(1, "e1", plan_now=True, at=time.time())
        deadline = time.monotonic() + 10
        while not planning:
            assert time.monotonic() < deadline, "nothing planned"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # waiting for the lock
        task.cancel()
        planning[0].terminate()  # lost as the cancel lands
        done, _ = await asyncio.wait({task}, timeout=4.0)
        assert done, "the automation went on after its cancel"
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)
        await other.close()


async def test_a_task_that_does_not_end_when_cancelled_is_left_behind_in_bounded_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:  # as a statement waiting on a database gone silent
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await release.wait()

    tasks = [asyncio.create_task(stubborn(), name=f"stubborn-{n}") for n in range(3)]
    await asyncio.sleep(0)
    started = time.monotonic()
    await stop_tasks(*tasks, within=0.3)
    assert time.monotonic() - started < 2.0  # together, not one after another
    assert not any(task.done() for task in tasks)
    assert sum(r.getMessage() == "a task did not stop in time; shutting down without it"
               for r in caplog.records) == 3
    release.set()
    await asyncio.gather(*tasks)


async def test_a_task_that_failed_has_its_error_raised_once_all_are_stopped() -> None:
    async def failing() -> None:
        raise RuntimeError("boom")

    other = asyncio.create_task(asyncio.sleep(60))
    task = asyncio.create_task(failing(), name="failing")
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="boom"):
        await stop_tasks(other, task)
    assert other.cancelled()


async def test_a_last_flush_that_hangs_is_given_up_after_its_time() -> None:
    started = time.monotonic()
    assert not await finish_within(asyncio.sleep(60), within=0.2, what="a flush")
    assert time.monotonic() - started < 2.0
    assert await finish_within(asyncio.sleep(0), within=1.0, what="a flush")


async def test_a_flush_whose_clean_up_is_cancelled_is_cancelled_with_it() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def flush() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    outer = asyncio.create_task(finish_within(flush(), within=30, what="a flush"))
    await started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    async with asyncio.timeout(1.0):
        await cancelled.wait()  # the flush did not go on alone

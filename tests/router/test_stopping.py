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

from automation.contacts import LastContacts
from automation.engine import CallAutomation
from cache.accounts import AccountRegistry
from router.calls_folder import CallsFolder

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

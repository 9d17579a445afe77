"""One replica per account for a job: the advisory lock on a connection of its own."""

from __future__ import annotations

import asyncio
from contextlib import suppress

import asyncpg

from lookup.account_lock import LOCK_KEEPALIVE, supervise, while_locked


async def test_only_one_holder_works_an_account_and_another_takes_over_when_it_goes(
    dsn: str,
) -> None:
    working: list[str] = []
    release, holding = asyncio.Event(), asyncio.Event()

    async def work_a(_con: asyncpg.Connection) -> None:
        working.append("a")
        holding.set()
        await release.wait()

    async def work_b(_con: asyncpg.Connection) -> None:
        working.append("b")

    a = asyncio.create_task(while_locked(dsn, "job", 7, 1, work_a, wanted=lambda: True,
                                         retry_s=0.05))
    await asyncio.wait_for(holding.wait(), 5)
    b = asyncio.create_task(while_locked(dsn, "job", 7, 1, work_b, wanted=lambda: True,
                                         retry_s=0.05))
    await asyncio.sleep(0.3)
    assert working == ["a"]  # b waits for the lock
    release.set()  # a is done with the account: its connection and lock go
    await asyncio.wait_for(asyncio.gather(a, b), 5)
    assert working == ["a", "b"]


async def test_the_lock_holders_connection_asks_the_server_to_keep_it_alive(dsn: str) -> None:
    # So that a holder whose host dies lets go of the account within half a minute.
    # (The tests' server is on a Unix socket, where the values read 0: the source shows
    # that the connection set them: SET, not startup parameters, which a pooler may refuse.)
    seen: dict[str, str] = {}

    async def work(con: asyncpg.Connection) -> None:
        for row in await con.fetch("SELECT name, source FROM pg_settings"
                                   " WHERE name = ANY($1::text[])", list(LOCK_KEEPALIVE)):
            seen[row["name"]] = row["source"]

    await asyncio.wait_for(while_locked(dsn, "job", 7, 2, work, wanted=lambda: True,
                                        retry_s=0.05), 5)
    assert seen == dict.fromkeys(LOCK_KEEPALIVE, "session")


async def test_supervise_restarts_a_failed_loop_and_stops_an_unwanted_one() -> None:
    runs: dict[int, int] = {1: 0, 2: 0}
    stopped: list[int] = []
    wanted = {1, 2}

    async def loop(account_id: int) -> None:
        runs[account_id] += 1
        if account_id == 1:
            raise RuntimeError("boom")
        await asyncio.sleep(60)

    task = asyncio.create_task(supervise("job", lambda: wanted, loop, every=0.02,
                                         stopped=stopped.append))
    for _ in range(500):
        if runs[1] >= 3:
            break
        await asyncio.sleep(0.01)
    assert runs[1] >= 3  # restarted after each failure
    assert runs[2] == 1  # still running
    wanted.discard(2)
    for _ in range(500):
        if stopped:
            break
        await asyncio.sleep(0.01)
    assert stopped == [2]
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def test_a_shutdown_while_an_unwanted_loop_is_stopping_is_not_swallowed() -> None:
    wanted = {1}
    stopping = asyncio.Event()

    async def loop(_account_id: int) -> None:
        try:
            await asyncio.sleep(60)
        finally:  # a loop's own clean-up (closing its CRM client, its lock's connection)
            stopping.set()
            await asyncio.shield(asyncio.sleep(0.3))

    task = asyncio.create_task(supervise("job", lambda: wanted, loop, every=0.02))
    await asyncio.sleep(0.1)
    wanted.clear()  # the account goes: supervise waits for its loop to end
    await asyncio.wait_for(stopping.wait(), 2)
    task.cancel()  # and the service stops meanwhile
    done, _ = await asyncio.wait({task}, timeout=3)
    assert done == {task}, "supervise went on after it was cancelled"
    assert task.cancelled()

"""One replica per account for a job: an advisory lock on a connection of its own.

A job (the CRM sync, the CRM outbox) works an account only on the replica
whose connection holds ``pg_try_advisory_lock(job, account id)``. When that
connection is lost the lock goes with it, and another replica takes over
within a retry. ``supervise`` keeps one such loop per wanted account and
restarts one that failed; ``while_locked`` is that loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import suppress
from typing import Any

import asyncpg

from lookup.db import cancel_wins

logger = logging.getLogger(__name__)

__all__ = ["LOCK_KEEPALIVE", "supervise", "while_locked"]

_DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# The lock lives as long as the server keeps its connection. A holder whose host dies
# without closing it (power, network) would keep the account from every other replica
# until the kernel gives up on the socket (15 minutes to 2 hours); with these the
# server finds it dead within half a minute and lets go. (Ignored over a Unix socket.)
LOCK_KEEPALIVE = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
                  "tcp_keepalives_count": "3", "tcp_user_timeout": "30000"}


async def supervise(job: str, wanted: Callable[[], Iterable[int]],
                    loop: Callable[[int], Coroutine[Any, Any, None]], *, every: float = 1.0,
                    stopped: Callable[[int], None] | None = None) -> None:
    """Keep ``loop(account id)`` running for every wanted account; cancel to stop all."""
    tasks: dict[int, asyncio.Task[None]] = {}
    try:
        while True:
            want = set(wanted())
            for account_id in want:
                task = tasks.get(account_id)
                if task is not None and task.done() and not task.cancelled() \
                        and (failure := task.exception()) is not None:
                    logger.error("%s: an account's loop failed; restarting it", job,
                                 exc_info=failure, extra={"account_id": account_id})
                if task is None or task.done():
                    tasks[account_id] = asyncio.create_task(loop(account_id),
                                                            name=f"{job}-{account_id}")
            for account_id in set(tasks) - want:
                await _stop(tasks[account_id])  # still known here if we are cancelled
                del tasks[account_id]
                if stopped is not None:
                    stopped(account_id)
            await asyncio.sleep(every)
    finally:
        for task in tasks.values():
            if not task.cancelling():  # one being stopped is left to its clean-up
                task.cancel()
        if tasks:
            await asyncio.wait(tasks.values())
            for task in tasks.values():
                _reap(task)


async def while_locked(dsn: str, job: str, lock_class: int, account_id: int,
                       work: Callable[[asyncpg.Connection], Awaitable[None]], *,
                       wanted: Callable[[], bool], retry_s: float) -> None:
    """Run ``work`` on a connection that holds the job's lock for the account, while the
    account is wanted; ``work`` returning means the account is done with."""
    while wanted():
        try:
            con = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("%s: cannot connect; retrying", job, extra={"error": repr(exc)})
            await asyncio.sleep(retry_s)
            continue
        try:
            # set here, not as startup parameters, which a pooler in front may refuse
            for name, value in LOCK_KEEPALIVE.items():
                await con.execute(f"SET {name} = {value}")
            if await con.fetchval("SELECT pg_try_advisory_lock($1, $2)", lock_class,
                                  account_id):
                await work(con)
                return
        except _DATABASE_ERRORS as exc:
            cancel_wins(exc)
            logger.warning("%s: lost the database; will retry", job,
                           extra={"account_id": account_id, "error": repr(exc)})
        finally:
            with suppress(Exception):
                await con.close(timeout=1)
        await asyncio.sleep(retry_s)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel one account's loop and wait for its end. ``asyncio.wait``, not ``await
    task`` under ``suppress``: a cancel of the caller (shutdown) meanwhile is not
    mistaken for the loop's and swallowed."""
    task.cancel()
    await asyncio.wait({task})
    _reap(task)


def _reap(task: asyncio.Task[None]) -> None:
    """Retrieve an ended loop's outcome (no "exception never retrieved" at exit)."""
    if not task.cancelled() and (failure := task.exception()) is not None:
        logger.debug("an account's loop had failed", exc_info=failure)

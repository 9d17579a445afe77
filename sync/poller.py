"""Incremental sync inside ``serve``: every account with Megaplan settings is polled.

One replica polls an account at a time: each account's loop holds
``pg_try_advisory_lock`` on a dedicated connection (which also carries its
writes); when that connection is lost the lock goes with it and any replica
may take over. A full pass runs when the account has no copy yet (or no
watermark, or a full pass was interrupted) and nightly; otherwise a pass reads
what changed since the watermark. A full pass that failed is resumed at the next
poll, after an incremental pass, so one the CRM keeps failing does not freeze the
copy. Nothing here is on the routing path: a CRM
that is down or slow only delays the copy, and routing keeps the last one.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from lookup.account_lock import supervise, while_locked
from lookup.accounts import Account
from mango.client import PbxClient
from megaplan.credentials import MegaplanCredentials
from sync.account import AccountSync, CrmHealth, FullPass, SyncOptions, megaplan_credentials
from sync.metrics import SyncMetrics
from sync.store import copy_is_empty, read_state

logger = logging.getLogger(__name__)

__all__ = ["LOCK_CLASS", "NIGHTLY_AT", "SyncService", "full_due"]

LOCK_CLASS = 0x53594E43  # "SYNC": pg_try_advisory_lock(LOCK_CLASS, account id)
NIGHTLY_AT = time(3, 0)  # local time of the account's timezone
_SUPERVISE_S = 1.0
_LOCK_RETRY_S = 5.0


def _last_night(now: datetime, timezone: str) -> datetime:
    """The latest NIGHTLY_AT in the account's timezone that is not after ``now``."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    mark = datetime.combine(local.date(), NIGHTLY_AT, tzinfo=zone)
    if mark > local:
        mark -= timedelta(days=1)
    return mark


def full_due(state: dict[str, Any] | None, empty: bool, now: datetime, timezone: str,
             since: datetime) -> bool:
    """A full pass is due: no copy, no watermark, an interrupted pass, or a night passed
    since the last full pass (or since ``since``, when this replica started polling)."""
    if empty or state is None or state.get("watermark") is None or state.get("full_pending"):
        return True
    finished = state.get("full_finished_at") or since
    return _last_night(now, timezone) > max(finished, since)


class AccountSource(Protocol):
    """The accounts this replica knows (the app's ``cache.accounts.AccountRegistry``)."""

    def all(self) -> list[Account]: ...

    def by_id(self, account_id: int, /) -> Account | None: ...


class SyncService:
    """Run ``run()`` as a task; cancelling it stops every account's loop."""

    __slots__ = ("_accounts", "_dsn", "_health", "_metrics", "_options", "_pbx", "_poll_s",
                 "_started")

    def __init__(self, dsn: str, accounts: AccountSource, pbx: PbxClient, *,
                 options: SyncOptions, poll_seconds: float, metrics: SyncMetrics | None = None,
                 health: CrmHealth | None = None) -> None:
        self._dsn = dsn
        self._accounts = accounts
        self._pbx = pbx
        self._options = options
        self._poll_s = poll_seconds
        self._metrics = metrics
        self._health = health
        self._started = datetime.now(UTC)

    async def run(self) -> None:
        await supervise("sync", self._wanted, self._account_loop, every=_SUPERVISE_S,
                        stopped=self._metrics.forget if self._metrics is not None else None)

    def _wanted(self) -> list[int]:
        return [a.id for a in self._accounts.all() if megaplan_credentials(a)]

    async def _account_loop(self, account_id: int) -> None:
        resume: list[FullPass | None] = [None]  # an interrupted full pass, kept across locks

        async def poll(con: asyncpg.Connection) -> None:
            resume[0] = await self._poll(con, account_id, resume[0])

        await while_locked(self._dsn, "sync", LOCK_CLASS, account_id, poll,
                           wanted=lambda: self._account(account_id) is not None,
                           retry_s=min(self._poll_s, _LOCK_RETRY_S))

    def _account(self, account_id: int) -> tuple[Account, MegaplanCredentials] | None:
        account = self._accounts.by_id(account_id)
        credentials = None if account is None else megaplan_credentials(account)
        return None if account is None or credentials is None else (account, credentials)

    async def _poll(self, con: asyncpg.Connection, account_id: int,
                    resume: FullPass | None) -> FullPass | None:
        """Poll while this connection holds the account's lock and the account has a CRM."""
        async with AsyncExitStack() as stack:
            sync: AccountSync | None = None
            credentials: MegaplanCredentials | None = None
            while (found := self._account(account_id)) is not None:
                account, now_credentials = found
                if sync is None or now_credentials != credentials:
                    await stack.aclose()
                    sync = await stack.enter_async_context(AccountSync(
                        account, con, self._pbx, options=self._options, metrics=self._metrics,
                        health=self._health))
                    credentials = now_credentials
                    logger.info("sync: polling the CRM", extra={"account": account.name})
                sync.account = account  # settings (region) may have changed
                resume = await self._once(con, sync, resume)
                await asyncio.sleep(self._poll_s)
                await con.fetchval("SELECT 1")  # the lock lives only as long as this connection
        return resume

    async def _once(self, con: asyncpg.Connection, sync: AccountSync,
                    resume: FullPass | None) -> FullPass | None:
        account = sync.account
        state = await read_state(con, account.id)
        watermark = None if state is None else state.get("watermark")
        if resume is not None or full_due(state, await copy_is_empty(con, account.id),
                                          datetime.now(UTC), account.settings.timezone,
                                          self._started):
            if resume is not None and watermark is not None:
                # A full pass that keeps failing (a page the CRM cannot serve) must not
                # freeze the copy: what changed since the watermark is read first. What
                # it read counts as listed, or the resumed pass (past those ids already)
                # would drop it, and the moved watermark would not read it again.
                await sync.incremental(watermark, seen=resume.seen)
            report, run = await sync.full(resume)
            return None if report.complete else run
        assert watermark is not None
        await sync.incremental(watermark)
        return None

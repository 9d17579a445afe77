"""The overview page's figures for one account: a day's calls per hour, the
outbox's depth and the CRM sync's state.

One call to ``overview`` reads them all; each part is an indexed read of that
day's slice (``calls_by_start``), the pending actions (``crm_actions_due``) or
one row (``sync_state``), so its cost does not grow with the history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from lookup.calls import HourCounts, calls_by_hour
from lookup.conn import Conn
from lookup.outbox import pending_actions

__all__ = ["Overview", "SyncStatus", "overview", "sync_status"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncStatus:
    """The CRM sync as ``sync.store`` records it (``sync_state``)."""

    last_success_at: datetime | None  # the start of the last pass that completed
    full_pending: bool  # a full pass began and has not ended (running, or interrupted)
    full_finished_at: datetime | None
    incremental_finished_at: datetime | None
    watermark: datetime | None  # the newest CRM change taken
    last_error: str | None  # never cleared: see ``failing``
    last_error_at: datetime | None

    @property
    def failing(self) -> bool:
        """The last error came after the last pass that completed (or none ever did), or
        a full pass is being retried after an error: the incremental passes between its
        attempts complete, but deletions wait for it."""
        if self.last_error_at is None:
            return False
        finished = [t for t in (self.full_finished_at, self.incremental_finished_at) if t]
        if self.full_pending and (self.full_finished_at is None
                                  or self.last_error_at > self.full_finished_at):
            return True
        return not finished or self.last_error_at > max(finished)


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    day: date
    timezone: str
    hours: list[HourCounts]  # 24, hour 0 to 23 of the day's local clock
    outbox_pending: int
    outbox_oldest_s: float | None  # age of the oldest pending action; None when none is
    sync: SyncStatus | None  # None: the account was never synced

    def total(self) -> HourCounts:
        """The whole day (``hour`` is -1)."""
        day = HourCounts(hour=-1)
        for h in self.hours:
            day.calls += h.calls
            day.routed += h.routed
            day.undecided += h.undecided
            day.answered += h.answered
            day.missed += h.missed
            day.in_progress += h.in_progress
            for outcome, n in h.not_routed.items():
                day.not_routed[outcome] = day.not_routed.get(outcome, 0) + n
        return day


async def overview(con: Conn | asyncpg.Pool, account_id: int, *, timezone: str,
                   day: date | None = None, now: datetime | None = None) -> Overview:
    """The account's overview for ``day`` (today in ``timezone``, the account's
    ``settings.timezone``, when not given)."""
    zone = ZoneInfo(timezone)
    if day is None:
        day = (now or datetime.now(UTC)).astimezone(zone).date()
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    hours = await calls_by_hour(con, account_id, start, end, timezone)
    pending, oldest = await pending_actions(con, account_id)
    return Overview(day=day, timezone=timezone, hours=hours, outbox_pending=pending,
                    outbox_oldest_s=oldest, sync=await sync_status(con, account_id))


async def sync_status(con: Conn | asyncpg.Pool, account_id: int) -> SyncStatus | None:
    """Read here, not through ``sync.store`` (which lookup may not import): the
    columns the pages show, typed."""
    r = await con.fetchrow(
        """SELECT last_success_at, full_pending, full_finished_at, incr_finished_at, watermark,
                  last_error, last_error_at
           FROM sync_state WHERE account_id = $1""", account_id)
    if r is None:
        return None
    return SyncStatus(last_success_at=r["last_success_at"], full_pending=r["full_pending"],
                      full_finished_at=r["full_finished_at"],
                      incremental_finished_at=r["incr_finished_at"], watermark=r["watermark"],
                      last_error=r["last_error"], last_error_at=r["last_error_at"])

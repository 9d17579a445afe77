"""Whether each account's PBX API and CRM answered lately (``service_health``).

Every replica notes each answer and failure in memory (``router.health``) and
writes what it saw here at most every few seconds, in one statement; rows only
move forward (the newest success and the newest failure win, whichever replica
wrote last), so any replica reads the same. ``service_health`` reads one
account's state, as ``GET /api/health`` (and anything else that shows it) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import asyncpg

from lookup.conn import Conn

__all__ = ["CRM", "PBX", "AccountHealth", "HealthNote", "Service", "ServiceState",
           "service_health", "write_health"]

Service = Literal["pbx", "crm"]
PBX: Final = "pbx"
CRM: Final = "crm"
ERROR_LENGTH = 200  # a reason is one short line


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One service of one account: its newest success and newest failure."""

    last_ok_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None

    @property
    def ok(self) -> bool | None:
        """True when the last success is newer than the last failure; None: never contacted."""
        if self.last_ok_at is None:
            return None if self.last_error_at is None else False
        return self.last_error_at is None or self.last_ok_at > self.last_error_at

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "last_ok_at": _iso(self.last_ok_at),
                "last_error_at": _iso(self.last_error_at), "last_error": self.last_error}


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """An account's PBX API and CRM; a service never contacted has an empty state."""

    pbx: ServiceState
    crm: ServiceState

    def to_json(self, *, crm_configured: bool) -> dict[str, Any]:
        """``crm`` is null, with ``crm_reason``, for an account that has no CRM."""
        out: dict[str, Any] = {"pbx": self.pbx.to_json()}
        if crm_configured:
            out["crm"] = self.crm.to_json()
        else:
            out["crm"] = None
            out["crm_reason"] = "no CRM configured for this account"
        return out


@dataclass(slots=True)
class HealthNote:
    """What one replica saw of one service since it last wrote (Unix seconds)."""

    account_id: int
    service: Service
    ok_at: float | None = None
    error_at: float | None = None
    error: str | None = None

    def merge(self, other: HealthNote) -> None:
        """Take the newer success and the newer failure of the two."""
        if other.ok_at is not None and (self.ok_at is None or other.ok_at > self.ok_at):
            self.ok_at = other.ok_at
        if other.error_at is not None and (self.error_at is None
                                           or other.error_at > self.error_at):
            self.error_at, self.error = other.error_at, other.error


async def write_health(con: Conn | asyncpg.Pool, notes: Sequence[HealthNote]) -> None:
    """Upsert the notes in one statement; an account removed meanwhile is skipped.

    Rows go in key order, so two replicas writing at once take the rows' locks
    in one order and never deadlock.
    """
    if not notes:
        return
    rows = sorted(notes, key=lambda n: (n.account_id, n.service))
    await con.execute(
        """
        INSERT INTO service_health AS h
               (account_id, service, last_ok_at, last_error_at, last_error)
        SELECT n.account_id, n.service, to_timestamp(n.ok_at), to_timestamp(n.error_at),
               n.error
        FROM unnest($1::int[], $2::text[], $3::float8[], $4::float8[], $5::text[])
             WITH ORDINALITY AS n(account_id, service, ok_at, error_at, error, i)
        WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.id = n.account_id)
        ORDER BY n.i
        ON CONFLICT (account_id, service) DO UPDATE SET
            last_ok_at = GREATEST(h.last_ok_at, EXCLUDED.last_ok_at),
            last_error_at = GREATEST(h.last_error_at, EXCLUDED.last_error_at),
            last_error = CASE
                WHEN EXCLUDED.last_error_at IS NOT NULL
                     AND (h.last_error_at IS NULL OR EXCLUDED.last_error_at >= h.last_error_at)
                THEN EXCLUDED.last_error ELSE h.last_error END
        """,
        [n.account_id for n in rows], [n.service for n in rows], [n.ok_at for n in rows],
        [n.error_at for n in rows], [_short(n.error) for n in rows],
    )


async def service_health(con: Conn | asyncpg.Pool, account_id: int) -> AccountHealth:
    """The account's PBX and CRM as every replica saw them (as of their last writes)."""
    found = {r["service"]: ServiceState(r["last_ok_at"], r["last_error_at"], r["last_error"])
             for r in await con.fetch(
                 "SELECT service, last_ok_at, last_error_at, last_error FROM service_health"
                 " WHERE account_id = $1", account_id)}
    return AccountHealth(pbx=found.get(PBX, ServiceState()),
                         crm=found.get(CRM, ServiceState()))


def _short(error: str | None) -> str | None:
    if error is None:
        return None
    line = " ".join(error.split())
    return line if len(line) <= ERROR_LENGTH else line[:ERROR_LENGTH - 1] + "…"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")

"""What sync writes besides clients and employees: its state per account, programs,
the marking of what left the CRM, and the change filter that keeps unchanged
clients from being rewritten (and the indexes from being told about nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from lookup.conn import Conn
from lookup.importer import ClientRecord
from megaplan import mapping as mp

__all__ = [
    "SyncReport",
    "changed_clients",
    "copy_is_empty",
    "current_extensions",
    "deactivate_unseen_employees",
    "drop_unseen_clients",
    "ensure_state",
    "read_state",
    "record_error",
    "record_full",
    "record_incremental",
    "start_full",
    "status_json",
    "write_programs",
]

PassKind = Literal["full", "incremental"]


@dataclass(slots=True, kw_only=True)
class SyncReport:
    """One pass: what it read, wrote and refused."""

    kind: PassKind
    started_at: datetime
    employees: int = 0
    clients: int = 0  # read from the CRM
    written: int = 0  # of those, changed here
    dropped: int = 0  # gone from the CRM (full pass)
    errors: int = 0  # records or phones refused
    requests: int = 0
    duration_s: float = 0.0
    complete: bool = False
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        state = "done" if self.complete else f"FAILED ({self.error})"
        return (f"{self.kind} sync {state}: {self.employees} employees, {self.clients} clients "
                f"read ({self.written} changed, {self.dropped} dropped), {self.errors} errors, "
                f"{self.requests} CRM requests, {self.duration_s:.1f} s")


async def ensure_state(con: Conn, account_id: int) -> None:
    await con.execute("INSERT INTO sync_state (account_id) VALUES ($1) ON CONFLICT DO NOTHING",
                      account_id)


async def read_state(con: Conn | asyncpg.Pool, account_id: int) -> dict[str, Any] | None:
    row = await con.fetchrow("SELECT * FROM sync_state WHERE account_id = $1", account_id)
    return None if row is None else dict(row)


async def copy_is_empty(con: Conn, account_id: int) -> bool:
    return not await con.fetchval(
        "SELECT EXISTS (SELECT 1 FROM clients WHERE account_id = $1)"
        " OR EXISTS (SELECT 1 FROM employees WHERE account_id = $1)", account_id)


async def start_full(con: Conn, account_id: int, started_at: datetime) -> None:
    await ensure_state(con, account_id)
    await con.execute(
        "UPDATE sync_state SET full_pending = true, full_started_at = $2, updated_at = now()"
        " WHERE account_id = $1", account_id, started_at)


async def record_full(con: Conn, account_id: int, report: SyncReport,
                      watermark: datetime | None) -> None:
    """A complete full pass; the watermark only moves forward."""
    await con.execute(
        """
        UPDATE sync_state SET full_pending = false, full_finished_at = now(),
            full_duration_s = $2, full_employees = $3, full_clients = $4, full_dropped = $5,
            full_errors = $6, full_requests = $7,
            watermark = greatest(watermark, $8), last_success_at = $9, updated_at = now()
        WHERE account_id = $1
        """,
        account_id, report.duration_s, report.employees, report.clients, report.dropped,
        report.errors, report.requests, watermark, report.started_at)


async def record_incremental(con: Conn, account_id: int, report: SyncReport,
                             watermark: datetime | None) -> None:
    await ensure_state(con, account_id)
    await con.execute(
        """
        UPDATE sync_state SET incr_started_at = $2, incr_finished_at = now(),
            incr_duration_s = $3, incr_employees = $4, incr_clients = $5, incr_errors = $6,
            incr_requests = $7, watermark = greatest(watermark, $8),
            last_success_at = greatest(last_success_at, $2), updated_at = now()
        WHERE account_id = $1
        """,
        account_id, report.started_at, report.duration_s, report.employees, report.clients,
        report.errors, report.requests, watermark)


async def record_error(con: Conn, account_id: int, message: str) -> None:
    await ensure_state(con, account_id)
    await con.execute(
        "UPDATE sync_state SET last_error = $2, last_error_at = now(), updated_at = now()"
        " WHERE account_id = $1", account_id, message[:2000])


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def status_json(name: str, configured: bool, row: dict[str, Any] | None,
                now: datetime) -> dict[str, Any]:
    """``GET /api/accounts/{name}/sync`` and ``mango-router sync --status``."""
    r = row or {}
    success = r.get("last_success_at")
    return {
        "account": name,
        "configured": configured,
        "watermark": _iso(r.get("watermark")),
        "lag_seconds": round((now - success).total_seconds(), 3) if success else None,
        "full": {
            "running_or_interrupted": bool(r.get("full_pending")),
            "started_at": _iso(r.get("full_started_at")),
            "finished_at": _iso(r.get("full_finished_at")),
            "duration_seconds": r.get("full_duration_s"),
            "employees": r.get("full_employees"),
            "clients": r.get("full_clients"),
            "dropped": r.get("full_dropped"),
            "errors": r.get("full_errors"),
            "requests": r.get("full_requests"),
        },
        "incremental": {
            "started_at": _iso(r.get("incr_started_at")),
            "finished_at": _iso(r.get("incr_finished_at")),
            "duration_seconds": r.get("incr_duration_s"),
            "employees": r.get("incr_employees"),
            "clients": r.get("incr_clients"),
            "errors": r.get("incr_errors"),
            "requests": r.get("incr_requests"),
        },
        "last_error": None if not r.get("last_error") else {
            "at": _iso(r.get("last_error_at")), "message": r["last_error"]},
    }


_STORED = """
SELECT c.crm_id, c.kind, c.name, c.dropped, c.line_number,
       coalesce((SELECT array_agg(p.phone_key ORDER BY p.phone_key)
                 FROM client_phones p WHERE p.client_uid = c.uid), '{}') AS phones,
       coalesce((SELECT array_agg(r.kind || ':' || r.ref_id ORDER BY r.position)
                 FROM client_responsibles r WHERE r.client_uid = c.uid), '{}') AS resp
FROM clients c WHERE c.account_id = $1 AND c.crm_id = ANY($2::text[])
"""


async def changed_clients(con: Conn, account_id: int,
                          records: Sequence[ClientRecord]) -> list[ClientRecord]:
    """The records that differ from what is stored (new ones included)."""
    stored = {r["crm_id"]: r for r in await con.fetch(
        _STORED, account_id, [c.id for c in records])}
    out: list[ClientRecord] = []
    for c in records:
        s = stored.get(c.id)
        if (
            s is None
            or (s["kind"], s["name"], s["dropped"]) != (c.kind, c.name, c.dropped)
            or (c.line_number is not None and s["line_number"] != c.line_number)
            or list(s["phones"]) != sorted(k for k, _ in c.phones)
            or list(s["resp"]) != [f"{k}:{ref}" for k, ref in c.responsibles]
        ):
            out.append(c)
    return out


async def drop_unseen_clients(con: Conn, account_id: int, seen: Iterable[str]) -> int:
    """After a complete full pass: a client the CRM no longer lists is not routed to."""
    result: str = await con.execute(
        """UPDATE clients c SET dropped = true, updated_at = now()
           WHERE c.account_id = $1 AND NOT c.dropped
             AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS s(id) WHERE s.id = c.crm_id)""",
        account_id, list(seen))
    return int(result.rsplit(" ", 1)[-1])


async def deactivate_unseen_employees(con: Conn, account_id: int, seen: Iterable[str]) -> int:
    """An employee the CRM no longer lists (deleted) takes no calls."""
    result: str = await con.execute(
        """UPDATE employees e SET active = false, updated_at = now()
           WHERE e.account_id = $1 AND e.active
             AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS s(id) WHERE s.id = e.crm_id)""",
        account_id, list(seen))
    return int(result.rsplit(" ", 1)[-1])


async def current_extensions(con: Conn, account_id: int) -> dict[str, str | None]:
    rows = await con.fetch("SELECT crm_id, extension FROM employees WHERE account_id = $1",
                           account_id)
    return {r["crm_id"]: r["extension"] for r in rows}


async def write_programs(con: Conn, account_id: int, programs: Sequence[mp.Program]) -> None:
    """The deal programs and their states, replaced whole in one transaction."""
    async with con.transaction():
        await con.execute(
            "DELETE FROM programs WHERE account_id = $1 AND NOT (crm_id = ANY($2::text[]))",
            account_id, [p.id for p in programs])
        await con.execute("DELETE FROM program_states WHERE account_id = $1", account_id)
        await con.executemany(
            """INSERT INTO programs (account_id, crm_id, name) VALUES ($1, $2, $3)
               ON CONFLICT (account_id, crm_id) DO UPDATE SET name = EXCLUDED.name""",
            [(account_id, p.id, p.name) for p in programs])
        await con.executemany(
            """INSERT INTO program_states (account_id, program_id, crm_id, name, type, is_entry)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
            [(account_id, p.id, s.id, s.name, s.type or "active", s.is_entry)
             for p in programs for s in p.states])

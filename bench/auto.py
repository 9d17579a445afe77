"""The call automation's side of the benchmark: the account as the ``auto`` mode and
``bench.outbox`` need it, and what the automation did.

The account gets its CRM through the environment (``MEGAPLAN_URL``…); what the
sync would otherwise bring first is written here with SQL, so that no full pass
of the CRM competes with the automation for the rate cap: the emulator's deal
programs and states (``prepare_account``) and a ``sync_state`` row saying a full
pass has just finished (the sync's first pass is then an incremental one of a few
requests). The settings go through ``PUT /api/settings``, which checks the deal
targets against those programs as it would for a user.

``python -m bench.auto prepare --data-dir D`` does the SQL in its own process
(it joins, or starts, the embedded PostgreSQL of ``D``) and prints the account id;
``clear`` empties the outbox after the mode.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from prometheus_client.parser import text_string_to_metric_families

from emulators.megaplan_dataset import import_lines as crm_import_lines
from emulators.megaplan_store import MegaplanState
from emulators.pbx_users import users_for

__all__ = [
    "DEAL_ACCEPTED",
    "DEAL_MISSED",
    "action_counts",
    "automation_settings",
    "clear_outbox",
    "default_settings",
    "ivr_employee",
    "main",
    "metric_counts",
    "pbx_users",
    "prepare_account",
    "put_settings",
    "service_counts",
    "wait_synced",
]

DEAL_ACCEPTED = {"program_id": "1", "state_id": "1"}  # the emulator's «Продажи», «Новая»
DEAL_MISSED = {"program_id": "2", "state_id": "5"}  # «Поддержка», «Обращение»


def automation_settings(ivr_employee_id: str) -> dict[str, Any]:
    """Every call does something in the CRM.

    The benchmark's calls are missed in the voice menu (they end there), so a new
    number makes its client (and deal) only with ``missed_in_ivr`` on: its employee
    is one without an extension, so the client made for a new number never routes
    its next call (the load expects unknown callers not to be routed).
    """
    return {
        "accepted_incoming": "client_and_deal",
        "missed_incoming": "client_and_deal",
        "accepted_deal": DEAL_ACCEPTED,
        "missed_deal": DEAL_MISSED,
        "repeat_calls": "always_deal",
        "missed_in_ivr": {"enabled": True, "employee_id": ivr_employee_id},
    }


def default_settings() -> dict[str, Any]:
    """What ``automation_settings`` changed, back to the defaults (the modes after
    ``auto`` share its database)."""
    return {
        "accepted_incoming": "nothing",
        "missed_incoming": "nothing",
        "accepted_deal": {"program_id": None, "state_id": None},
        "missed_deal": {"program_id": None, "state_id": None},
        "repeat_calls": "record_only",
        "missed_in_ivr": {"enabled": False, "employee_id": None},
    }


def _employee_lines(data_file: Path) -> list[bytes]:
    lines: list[bytes] = []
    with data_file.open("rb") as f:
        for line in f:
            if b'"type":"employee"' not in line:
                break  # employees come first in the benchmark's data files
            lines.append(line)
    return lines


def ivr_employee(data_file: Path) -> str:
    """An active employee of the data set with no extension."""
    for line in _employee_lines(data_file):
        e = orjson.loads(line)
        if e.get("active", True) and not e.get("extension"):
            return str(e["id"])
    raise ValueError(f"{data_file}: no active employee without an extension")


def pbx_users(data_file: Path) -> list[dict[str, Any]]:
    """The PBX users of the data set's employees (matched by e-mail), so the sync's
    pass keeps every extension as imported."""
    state = crm_import_lines(MegaplanState(), _employee_lines(data_file))
    return users_for(state.employees.values())


async def prepare_account(con: asyncpg.Connection, account_id: int,
                          now: datetime | None = None) -> None:
    """The emulator's programs in the copy, the sync state of a copy just synced, an
    empty outbox and no calls of earlier modes.

    The calls of earlier modes planned actions the account had no CRM for (every
    known client's call is recorded on its card), and the worker would apply those
    first. Their journal goes too: the automation's start plans again the calls of
    its last 11 minutes (``CallAutomation._recover``), and those would be the tens of
    thousands the ``index`` mode has just sent, not calls of this mode."""
    now = now or datetime.now(UTC)
    programs = MegaplanState().programs.values()
    async with con.transaction():
        await con.execute("DELETE FROM crm_new_numbers WHERE account_id = $1", account_id)
        await con.execute("DELETE FROM crm_actions WHERE account_id = $1", account_id)
        await con.execute("DELETE FROM calls WHERE account_id = $1", account_id)
        await con.execute("DELETE FROM call_events WHERE account_id = $1", account_id)
        # the earlier modes' planners' marks: their calls are gone, and a takeover of them
        # would query the journal and replan this mode's own calls so far
        await con.execute("DELETE FROM planner_marks")
        await con.executemany(
            """INSERT INTO programs (account_id, crm_id, name) VALUES ($1, $2, $3)
               ON CONFLICT (account_id, crm_id) DO UPDATE SET name = EXCLUDED.name""",
            [(account_id, p.id, p.name) for p in programs])
        await con.executemany(
            """INSERT INTO program_states (account_id, program_id, crm_id, name, type, is_entry)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (account_id, program_id, crm_id) DO UPDATE SET
                   name = EXCLUDED.name, type = EXCLUDED.type, is_entry = EXCLUDED.is_entry""",
            [(account_id, p.id, s.id, s.name, s.type, s.is_entry)
             for p in programs for s in p.states])
        await con.execute(
            """INSERT INTO sync_state (account_id, watermark, full_pending, full_started_at,
                                       full_finished_at, last_success_at)
               VALUES ($1, $2, false, $2, $2, $2)
               ON CONFLICT (account_id) DO UPDATE SET
                   watermark = EXCLUDED.watermark, full_pending = false,
                   full_started_at = EXCLUDED.full_started_at,
                   full_finished_at = EXCLUDED.full_finished_at,
                   last_success_at = EXCLUDED.last_success_at,
                   incr_started_at = NULL, incr_finished_at = NULL,
                   last_error = NULL, last_error_at = NULL, updated_at = now()""",
            account_id, now)
    # what the deletes left is vacuumed now, not by an autovacuum during the mode
    await con.execute(
        "VACUUM (ANALYZE) call_events, calls, crm_actions, crm_new_numbers, planner_marks")


async def action_counts(con: asyncpg.Connection | asyncpg.Pool, account_id: int
                        ) -> dict[str, dict[str, int]]:
    """The outbox by action and state: ``{"create_deal": {"done": 10, "pending": 2}}``."""
    out: dict[str, dict[str, int]] = {}
    for r in await con.fetch(
            """SELECT action, state, count(*) AS n FROM crm_actions WHERE account_id = $1
               GROUP BY action, state""", account_id):
        out.setdefault(r["action"], {})[r["state"]] = int(r["n"])
    return out


def metric_counts(text: str) -> dict[str, Any]:
    """The automation's counters from a ``/metrics`` page: actions planned by kind, and
    attempts by kind and outcome (done, retry, uncertain, failed), summed over accounts."""
    planned: dict[str, int] = {}
    attempts: dict[str, dict[str, int]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "mango_router_crm_actions_planned_total":
                kind = s.labels["kind"]
                planned[kind] = planned.get(kind, 0) + int(s.value)
            elif s.name == "mango_router_crm_actions_total":
                outcomes = attempts.setdefault(s.labels["kind"], {})
                outcome = s.labels["outcome"]
                outcomes[outcome] = outcomes.get(outcome, 0) + int(s.value)
    done = {k: v.get("done", 0) for k, v in attempts.items()}
    return {"planned": planned, "attempts": attempts, "planned_total": sum(planned.values()),
            "done_total": sum(done.values())}


def service_counts(base_url: str) -> dict[str, Any]:
    """``metric_counts`` of a running service's ``/metrics`` page."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as resp:
        return metric_counts(resp.read().decode())


def _request(url: str, *, token: str, body: Any = None, method: str = "GET",
             timeout: float = 10.0) -> Any:
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {url}: {exc.code} {exc.read()[:300]!r}") from None


def put_settings(base_url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """``PUT /api/settings`` of the default account; the settings now in force."""
    got: dict[str, Any] = _request(f"{base_url}/api/settings", token=token, body=body,
                                   method="PUT")
    return got


def wait_synced(base_url: str, token: str, *, within: float) -> dict[str, Any]:
    """Until the sync's first (incremental) pass has finished; its status.

    Raises when it has not within ``within`` seconds, or when it failed.
    """
    deadline = time.monotonic() + within
    while True:
        status: dict[str, Any] = _request(f"{base_url}/api/accounts/default/sync", token=token)
        if status["incremental"]["finished_at"] is not None:
            return status
        if status["full"]["running_or_interrupted"]:
            raise RuntimeError("the sync began a full pass (the prepared state was not taken)")
        if status["last_error"] is not None:
            raise RuntimeError(f"the sync failed: {status['last_error']['message']}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sync's first pass did not finish within {within:.0f} s")
        time.sleep(0.1)


async def clear_outbox(con: asyncpg.Connection, account_id: int) -> int:
    """The actions left pending (the cap is far below the calls' rate): the modes after
    ``auto`` share its database and have no CRM to apply them."""
    status: str = await con.execute("DELETE FROM crm_actions WHERE account_id = $1", account_id)
    return int(status.split()[-1])


async def _command(dsn: str, command: str) -> dict[str, int]:
    con = await asyncpg.connect(dsn)
    try:
        account_id: int | None = await con.fetchval(
            "SELECT id FROM accounts WHERE name = 'default'")
        if account_id is None:
            raise RuntimeError("no account named default (import the data first)")
        if command == "prepare":
            await prepare_account(con, account_id)
            return {"account_id": account_id}
        return {"account_id": account_id, "cleared": await clear_outbox(con, account_id)}
    finally:
        await con.close()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.auto")
    p.add_argument("command", choices=["prepare", "clear"])
    p.add_argument("--data-dir", type=Path, required=True)
    a = p.parse_args(argv)
    from lookup.embedded import ensure_embedded

    dsn = ensure_embedded(a.data_dir)
    sys.stdout.buffer.write(orjson.dumps(asyncio.run(_command(dsn, a.command))) + b"\n")


if __name__ == "__main__":
    main()

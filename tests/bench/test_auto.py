"""The auto mode's account: prepared with SQL so the sync's first pass is a few requests,
not a full pass of the CRM; the automation's settings accepted as a user would set them;
and a tiny auto mode run that plans and applies CRM actions."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from automation.metrics import AutomationMetrics
from bench.auto import (
    automation_settings,
    clear_outbox,
    default_settings,
    ivr_employee,
    metric_counts,
    pbx_users,
    prepare_account,
)
from bench.data import write_dataset
from emulators.megaplan import MegaplanState, export_jsonl
from emulators.megaplan_dataset import export_lines
from emulators.pbx import PbxState
from lookup.accounts import update_settings, upsert_default_account
from lookup.journal import JOURNAL_INSERT, JournalEntry, journal_args, recent_entries
from lookup.settings import SettingsError
from sync.poller import full_due
from tests.automation.conftest import eventually
from tests.conftest import PASSWORD, ServiceFactory, load_records

OPERATOR = {"Authorization": "Bearer operator-token"}


async def _account(db: asyncpg.Connection) -> int:
    account_id: int = await upsert_default_account(
        db, mango_api_key="test-key", mango_api_salt="test-salt",
        mango_api_url="http://127.0.0.1:1/vpbx/", megaplan=(None, None, None))
    return account_id


async def _sync_state(db: asyncpg.Connection) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM sync_state")
    assert row is not None
    return dict(row)


async def _extensions(db: asyncpg.Connection) -> dict[str, str | None]:
    return {r["crm_id"]: r["extension"] for r in await db.fetch(
        "SELECT crm_id, extension FROM employees")}


async def test_the_prepared_account_has_the_emulators_programs_and_no_full_pass_due(
    db: asyncpg.Connection,
) -> None:
    account_id = await _account(db)
    await db.execute("INSERT INTO crm_actions (account_id, entry_id, action, payload)"
                     " VALUES ($1, 'earlier-mode', 'record_call', '{}')", account_id)
    await db.execute(JOURNAL_INSERT, *journal_args([JournalEntry(
        account_id=account_id, kind="summary", entry_id="earlier-mode", call_id=None, seq=None,
        call_state=None, location=None, payload='{"entry_id": "earlier-mode"}')]))
    assert await recent_entries(db, within_s=660) != []
    await db.execute("INSERT INTO planner_marks (owner, planned_before)"
                     " VALUES (gen_random_uuid(), now())")
    now = datetime.now(UTC)
    await prepare_account(db, account_id, now)
    states = {(r["program_id"], r["crm_id"]) for r in await db.fetch(
        "SELECT program_id, crm_id FROM program_states WHERE account_id = $1", account_id)}
    assert states == {(p.id, s.id) for p in MegaplanState().programs.values() for s in p.states}
    assert states >= {("1", "1"), ("1", "4"), ("2", "5"), ("2", "7")}
    state = await _sync_state(db)
    assert state["watermark"] == now
    assert not full_due(state, False, now, "Europe/Moscow", now)
    assert await db.fetchval("SELECT count(*) FROM crm_actions") == 0  # nothing left over
    # the automation's start would plan the earlier modes' calls again: none are left
    assert await recent_entries(db, within_s=660) == []
    assert await db.fetchval("SELECT count(*) FROM calls") == 0
    assert await db.fetchval("SELECT count(*) FROM planner_marks") == 0


async def test_clearing_the_outbox_drops_the_accounts_actions(db: asyncpg.Connection) -> None:
    account_id = await _account(db)
    await db.executemany("INSERT INTO crm_actions (account_id, entry_id, action, payload)"
                         " VALUES ($1, $2, 'create_deal', '{}')",
                         [(account_id, f"call-{n}") for n in range(3)])
    assert await clear_outbox(db, account_id) == 3
    assert await db.fetchval("SELECT count(*) FROM crm_actions") == 0


async def test_the_automation_settings_need_the_prepared_programs(
    dsn: str, db: asyncpg.Connection,
) -> None:
    await load_records(dsn, [{"type": "employee", "id": "7", "name": "Ivr", "extension": None}])
    account_id = await _account(db)
    with pytest.raises(SettingsError, match="accepted_deal"):
        await update_settings(db, account_id, automation_settings("7"))
    await prepare_account(db, account_id)
    got = await update_settings(db, account_id, automation_settings("7"))
    assert got is not None
    assert (got.accepted_incoming, got.missed_incoming, got.repeat_calls) == (
        "client_and_deal", "client_and_deal", "always_deal")
    back = await update_settings(db, account_id, default_settings())
    assert back is not None
    assert (back.accepted_incoming, back.repeat_calls, back.missed_in_ivr.enabled) == (
        "nothing", "record_only", False)


def test_the_voice_menu_employee_is_active_and_has_no_extension(tmp_path: Path) -> None:
    info = write_dataset(tmp_path / "d.jsonl", clients=200, seed=1)
    employees = {e["id"]: e for e in map(orjson.loads, (tmp_path / "d.jsonl").read_bytes()
                                         .splitlines()) if e["type"] == "employee"}
    chosen = employees[ivr_employee(info.path)]
    assert chosen["active"]
    assert not chosen["extension"]
    users = {u["general"]["email"]: u["telephony"]["extension"] for u in pbx_users(info.path)}
    assert users == {e["email"]: e["extension"] for e in employees.values() if e["extension"]}


def test_metric_counts_read_what_was_planned_and_done_over_every_account() -> None:
    registry = CollectorRegistry()
    m = AutomationMetrics(registry)
    m.planned.labels("default", "create_deal").inc(2)
    m.planned.labels("acme", "create_deal").inc()
    m.planned.labels("default", "record_call").inc(2)
    m.actions.labels("default", "create_deal", "done").inc()
    m.actions.labels("acme", "create_deal", "done").inc()
    m.actions.labels("default", "create_deal", "uncertain").inc()
    got = metric_counts(generate_latest(registry).decode())
    assert got["planned"] == {"create_deal": 3, "record_call": 2}
    assert got["attempts"] == {"create_deal": {"done": 2, "uncertain": 1}}
    assert (got["planned_total"], got["done_total"]) == (5, 2)


async def test_the_prepared_accounts_first_sync_is_a_short_incremental_pass(
    tmp_path: Path, dsn: str, db: asyncpg.Connection, mp_state: MegaplanState, mp_url: str,
    pbx: tuple[PbxState, str], service_factory: ServiceFactory,
) -> None:
    await load_records(dsn, [orjson.loads(line) for line in export_lines(mp_state)])
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    await prepare_account(db, account_id)
    before = await _sync_state(db)
    extensions = await _extensions(db)
    export_jsonl(mp_state, tmp_path / "crm.jsonl")
    pbx[0].users = pbx_users(tmp_path / "crm.jsonl")
    requests = mp_state.request_count
    svc = await service_factory(MEGAPLAN_URL=mp_url, MEGAPLAN_USERNAME="demo",
                                MEGAPLAN_PASSWORD=PASSWORD, MEGAPLAN_POLL_SECONDS="3600")

    async def synced() -> bool:
        return bool(await db.fetchval("SELECT incr_finished_at IS NOT NULL FROM sync_state"))

    await eventually(synced, within=30)
    after = await _sync_state(db)
    assert after["full_started_at"] == before["full_started_at"]  # no full pass began
    assert mp_state.request_count - requests < 10
    assert await _extensions(db) == extensions
    resp = await svc.client.put("/api/settings", headers=OPERATOR,
                                json=automation_settings(ivr_employee(tmp_path / "crm.jsonl")))
    assert resp.status == 200, await resp.text()


def test_a_tiny_auto_mode_run_plans_and_applies_crm_actions(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--modes", "auto", "--rates", "50", "--seconds", "1",
         "--search-steps", "0", "--warmup-seconds", "0", "--index-clients", "0",
         "--freshness", "0", "--sidecar-seconds", "0", "--clients", "300",
         "--out", str(tmp_path)], capture_output=True, timeout=110, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    results = orjson.loads((tmp_path / "results.json").read_bytes())
    auto = results["modes"]["auto"]
    assert "error" not in auto, auto
    assert auto["rates"]["50"]["lost"] == auto["rates"]["50"]["wrong"] == 0
    a = auto["automation"]
    # 50 calls: a deal and the call on the card each, and a client for each new number
    assert a["planned"]["create_deal"] == a["planned"]["record_call"] == 50
    assert a["done_total"] > 0
    assert sum(a["crm_applied"].values()) >= a["done_total"]
    assert [t["name"] for t in results["targets"] if t["name"].startswith("P")] == [
        "P1 auto p99 at 1000/s <= 1.5 x floor p99", "P2 auto max rate >= 0.8 x floor's"]

"""Full and incremental sync against the Megaplan and PBX emulators on loopback,
into a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest
from aiohttp import web

from emulators.megaplan import LINE_FIELD_NAME, MegaplanState, generate, serve_megaplan
from emulators.megaplan_store import CT_EMPLOYEE, ClientRow, EmployeeRow, ProgramRow, StateRow
from emulators.pbx import PbxState
from emulators.pbx_users import users_for
from lookup.accounts import Account, fetch_accounts, upsert_default_account
from lookup.phones import phone_key
from lookup.settings import Settings
from lookup.sql_lookup import decide_sql
from mango.client import open_pbx_client
from sync.account import AccountSync, SyncOptions, _refuse_url, megaplan_credentials
from sync.store import read_state, status_json
from tests.conftest import PASSWORD

FAST = SyncOptions(rate=None, batch=100, max_retries=1, backoff_base=0.005,
                   request_timeout=5.0, overlap_s=1.0)


async def _account(db: asyncpg.Connection, mp_url: str, pbx_url: str,
                   password: str = PASSWORD) -> Account:
    await upsert_default_account(db, mango_api_key="test-key", mango_api_salt="test-salt",
                                 mango_api_url=pbx_url, megaplan=(mp_url, "demo", password))
    return next(a for a in await fetch_accounts(db) if a.name == "default")


@pytest.fixture
async def account(db: asyncpg.Connection, mp_url: str, mp_state: MegaplanState,
                  pbx: tuple[PbxState, str]) -> Account:
    pbx[0].users = users_for(mp_state.employees.values())
    return await _account(db, mp_url, pbx[1])


@asynccontextmanager
async def syncer(db: asyncpg.Connection, account: Account,
                 **options: Any) -> AsyncIterator[AccountSync]:
    async with open_pbx_client() as pbx, AccountSync(
        account, db, pbx, options=dataclasses.replace(FAST, **options)
    ) as sync:
        yield sync


async def _crm_decision(state: MegaplanState, key: int) -> tuple[Any, ...]:
    """What the CRM itself answers (the emulator's callRoute rules), as a comparable tuple."""
    found = sorted((r for r in state.clients_by_phone(str(key)) if not r.is_dropped),
                   key=lambda r: int(r.id))
    if not found:
        return (None, None, None, "no_client")
    for ct, oid in found[0].responsibles:
        emp = state.employees.get(oid) if ct == CT_EMPLOYEE else None
        if emp is not None and emp.active:
            return (found[0].id, emp.id, emp.extension,
                    None if emp.extension else "no_extension")
    return (found[0].id, None, None, "no_active_responsible")


async def _decision(db: asyncpg.Connection, account_id: int, key: int) -> tuple[Any, ...]:
    d = await decide_sql(db, account_id, key)
    return (d.client_id, d.employee_id, d.extension, d.reason)


async def test_full_sync_copies_what_routing_needs_and_decides_like_the_crm(
    db: asyncpg.Connection, account: Account, mp_state: MegaplanState
) -> None:
    mp_state.update_client("2000003", extra={LINE_FIELD_NAME: "74951112233"})
    async with syncer(db, account) as sync:
        report, _ = await sync.full()
    assert report.complete, report.error
    assert report.errors == 0
    assert (report.employees, report.clients) == (len(mp_state.employees), 250)
    assert report.requests <= 250 // 100 + 10  # pages of 100, never one request per client
    assert await db.fetchval("SELECT count(*) FROM clients") == 250
    assert await db.fetchval(
        "SELECT line_number FROM clients WHERE crm_id = '2000003'") == "74951112233"
    states = await db.fetch("SELECT program_id, crm_id, type, is_entry FROM program_states"
                            " ORDER BY crm_id::int")
    assert [(s["program_id"], s["crm_id"]) for s in states][:2] == [("1", "1"), ("1", "2")]
    assert len(states) == sum(len(p.states) for p in mp_state.programs.values())
    keys = {phone_key(p) for r in mp_state.clients.values() for p in r.phones}
    for key in sorted(k for k in keys if k is not None):
        assert await _decision(db, account.id, key) == await _crm_decision(mp_state, key)


async def test_extensions_match_pbx_users_by_email_ignoring_case(
    db: asyncpg.Connection, account: Account, mp_state: MegaplanState,
    pbx: tuple[PbxState, str],
) -> None:
    pbx[0].users[0]["general"]["email"] = "EMP1@Example.COM"
    pbx[0].users[1]["telephony"]["extension"] = "777"
    async with syncer(db, account) as sync:
        await sync.full()
    rows = {r["crm_id"]: r["extension"] for r in await db.fetch(
        "SELECT crm_id, extension FROM employees")}
    assert rows["1000001"] == "101"
    assert rows["1000002"] == "777"
    last = max(mp_state.employees, key=int)
    assert rows[last] is None  # no PBX user has its e-mail


async def test_a_full_pass_drops_vanished_and_dropped_clients_and_deactivates_employees(
    db: asyncpg.Connection, mp_state: MegaplanState, pbx: tuple[PbxState, str]
) -> None:
    pbx[0].users = users_for(mp_state.employees.values())
    async with serve_megaplan(mp_state) as url:
        account = await _account(db, url, pbx[1])
        async with syncer(db, account) as sync:
            await sync.full()
    smaller = generate(200, seed=7)  # the same CRM without its last 50 clients
    smaller.password = PASSWORD
    smaller.drop_client("2000010")
    smaller.fire_employee("1000001")
    smaller.block_employee("1000002")
    async with serve_megaplan(smaller) as url:
        account = await _account(db, url, pbx[1])
        async with syncer(db, account) as sync:
            report, _ = await sync.full()
    assert report.complete
    assert report.dropped == 50
    routable = {r["crm_id"] for r in await db.fetch("SELECT crm_id FROM clients WHERE NOT dropped")}
    assert routable == {r.id for r in smaller.clients.values() if not r.is_dropped}
    active = {r["crm_id"]: r["active"] for r in await db.fetch(
        "SELECT crm_id, active FROM employees")}
    assert (active["1000001"], active["1000002"], active["1000004"]) == (False, False, True)


async def test_incremental_pass_takes_what_changed_since_the_watermark(
    db: asyncpg.Connection, account: Account, mp_state: MegaplanState
) -> None:
    async with syncer(db, account) as sync:
        await sync.full()
        watermark = (await read_state(db, account.id) or {})["watermark"]
        assert watermark is not None
        mp_state.set_responsibles("2000005", [(CT_EMPLOYEE, "1000004")])
        mp_state.update_client("2000006", phones=["+7 999 000-00-06"])
        mp_state.drop_client("2000007")
        mp_state.add_client(name="New Client", phones=["89990000008"],
                            responsibles=[(CT_EMPLOYEE, "1000005")])
        report = await sync.incremental(watermark)
    assert report.complete, report.error
    assert report.written == 4
    assert report.requests <= 4  # employees, one page of clients (and no more)
    assert await _decision(db, account.id, 79990000006) == (
        "2000006", *(await _crm_decision(mp_state, 79990000006))[1:])
    assert (await _decision(db, account.id, 79990000008))[0] is not None
    assert await db.fetchval("SELECT dropped FROM clients WHERE crm_id = '2000007'")
    assert await db.fetchval(
        "SELECT ref_id FROM client_responsibles r JOIN clients c ON c.uid = r.client_uid"
        " WHERE c.crm_id = '2000005'") == "1000004"
    later = (await read_state(db, account.id) or {})["watermark"]
    assert later > watermark


async def test_a_malformed_record_or_phone_is_logged_with_its_id_and_skipped(
    db: asyncpg.Connection, account: Account, mp_state: MegaplanState,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mp_state.put_client(ClientRow(id="2000002", kind="human", name="Broken",
                                  responsibles=[("Alien", "1")], phones=["89161112233"]))
    mp_state.update_client("2000004", phones=["not a phone", "+7 916 444-44-44"])
    with caplog.at_level(logging.WARNING):
        async with syncer(db, account) as sync:
            report, _ = await sync.full()
    assert report.complete
    assert report.errors == 2
    assert "2000002" in caplog.text
    assert "2000004" in caplog.text
    assert await db.fetchval("SELECT count(*) FROM clients") == 249
    assert (await _decision(db, account.id, 79164444444))[0] == "2000004"


async def test_crm_down_fails_the_pass_keeps_the_copy_and_the_next_resumes_from_watermark(
    db: asyncpg.Connection, account: Account, mp_state: MegaplanState
) -> None:
    async with syncer(db, account) as sync:
        await sync.full()
        watermark = (await read_state(db, account.id) or {})["watermark"]
        mp_state.set_responsibles("2000009", [(CT_EMPLOYEE, "1000006")])
        mp_state.faults.error_rate = 1.0
        failed = await sync.incremental(watermark)
        assert not failed.complete
        state = await read_state(db, account.id) or {}
        assert state["watermark"] == watermark
        assert "503" in state["last_error"]
        assert await db.fetchval("SELECT count(*) FROM clients WHERE NOT dropped") > 0
        mp_state.faults.error_rate = 0.0
        assert (await sync.incremental(watermark)).complete
    assert await db.fetchval(
        "SELECT ref_id FROM client_responsibles r JOIN clients c ON c.uid = r.client_uid"
        " WHERE c.crm_id = '2000009'") == "1000006"


async def test_programs_or_client_fields_the_crm_refuses_or_garbles_do_not_hold_up_the_clients(
    db: asyncpg.Connection, account: Account, mp_state: MegaplanState,
) -> None:
    # No rights to deals, or one program state it cannot describe: the clients, which
    # routing needs, are synced all the same (the pass failed, and so every pass after).
    mp_state.programs["99"] = ProgramRow(id="99", name="broken", states=(
        StateRow(id="991", name="x", type="active", is_entry=cast(bool, "yes")),))
    async with syncer(db, account) as sync:
        report, _ = await sync.full()
        assert report.complete, report.error
        assert report.clients == 250
        mp_state.set_responsibles("2000009", [(CT_EMPLOYEE, "1000006")])
        watermark = (await read_state(db, account.id) or {})["watermark"]
        assert (await sync.incremental(watermark)).complete
    assert await db.fetchval(
        "SELECT ref_id FROM client_responsibles r JOIN clients c ON c.uid = r.client_uid"
        " WHERE c.crm_id = '2000009'") == "1000006"


async def test_an_interrupted_full_pass_resumes_after_its_last_written_batch(
    db: asyncpg.Connection, account: Account, mp_state: MegaplanState
) -> None:
    def fail_after_two_batches(report: Any) -> None:
        if report.clients >= 200:
            mp_state.faults.error_rate = 1.0

    async with syncer(db, account, batch=100) as sync:
        sync._progress = fail_after_two_batches
        first, run = await sync.full()
        assert not first.complete
        assert (await read_state(db, account.id) or {})["full_pending"]
        mp_state.faults.error_rate = 0.0
        sync._progress = None
        before = mp_state.request_count
        second, _ = await sync.full(run)
    assert second.complete, second.error
    assert second.dropped == 0
    # extra fields, programs, employees and the pages after the last batch written
    assert mp_state.request_count - before <= 5
    state = await read_state(db, account.id) or {}
    assert not state["full_pending"]
    assert state["full_clients"] == 250


async def test_a_client_read_between_two_attempts_of_a_full_pass_is_not_dropped(
    db: asyncpg.Connection, account: Account, mp_state: MegaplanState
) -> None:
    pages_after: list[str] = []

    def third_page(request: web.Request) -> bool:  # the CRM fails from the third page on
        if "/contractor" in request.path and "pageAfter" in request.query_string:
            pages_after.append(request.query_string)
        return len(pages_after) >= 2

    async with syncer(db, account, batch=100) as sync:
        assert (await sync.full())[0].complete
        watermark = (await read_state(db, account.id) or {})["watermark"]
        pages_after.clear()
        mp_state.faults.error_when = third_page
        first, run = await sync.full()
        assert not first.complete
        assert run.cursor is not None  # it has read past the first page
        mp_state.faults.error_when = None
        # restored from the CRM's trash, under an id the full pass has read past
        mp_state.add_client(name="Restored Client", phones=["+7 999 000-00-01"],
                            responsibles=[(CT_EMPLOYEE, "1000001")], client_id="2000000")
        assert (await sync.incremental(watermark, seen=run.seen)).complete
        second, _ = await sync.full(run)
    assert second.complete, second.error
    assert second.dropped == 0
    assert await db.fetchval(
        "SELECT dropped FROM clients WHERE account_id = $1 AND crm_id = '2000000'",
        account.id) is False


async def test_credentials_never_appear_in_errors_or_logs(
    db: asyncpg.Connection, mp_url: str, pbx: tuple[PbxState, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "Wr0ng-Secret-Pa55"
    account = await _account(db, mp_url, pbx[1], password=wrong)
    with caplog.at_level(logging.DEBUG):
        async with syncer(db, account) as sync:
            report, _ = await sync.full()
    assert not report.complete
    state = await read_state(db, account.id)
    status = status_json("default", True, state, datetime.now(UTC))
    assert "401" in str(status["last_error"])
    for text in (str(status), caplog.text, report.summary()):
        assert wrong not in text
        assert PASSWORD not in text


async def test_employees_without_a_pbx_user_keep_their_stored_extension_when_pbx_is_down(
    db: asyncpg.Connection, account: Account, pbx: tuple[PbxState, str],
    mp_state: MegaplanState,
) -> None:
    async with syncer(db, account) as sync:
        await sync.full()
        pbx[0].behaviour.http_status = 503
        mp_state.put_employee(EmployeeRow(id="1000099", first_name="Late", last_name="Hire",
                                          email="late@example.com"))
        watermark = (await read_state(db, account.id) or {})["watermark"]
        report = await sync.incremental(watermark)
    assert report.complete
    assert report.errors == 1  # the PBX did not answer
    assert await db.fetchval(
        "SELECT extension FROM employees WHERE crm_id = '1000001'") == "101"
    assert await db.fetchval("SELECT count(*) FROM employees WHERE crm_id = '1000099'") == 1


def test_a_full_pass_is_due_for_an_empty_or_unsynced_copy_and_after_each_night() -> None:
    from sync.poller import full_due

    msk = "Europe/Moscow"  # 03:00 there is 00:00 UTC
    noon = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    synced = {"watermark": noon, "full_pending": False,
              "full_finished_at": datetime(2025, 3, 10, 1, 0, tzinfo=UTC)}
    started = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
    assert full_due(synced, True, noon, msk, started)  # the copy is empty
    assert full_due(None, False, noon, msk, started)  # never synced
    assert full_due({**synced, "watermark": None}, False, noon, msk, started)
    assert full_due({**synced, "full_pending": True}, False, noon, msk, started)
    assert not full_due(synced, False, noon, msk, started)
    next_night = datetime(2025, 3, 11, 0, 1, tzinfo=UTC)  # 03:01 in Moscow
    assert full_due(synced, False, next_night, msk, started)
    assert not full_due(synced, False, datetime(2025, 3, 10, 23, 59, tzinfo=UTC), msk, started)


def test_an_account_stored_with_a_crm_url_that_is_not_http_has_no_crm_and_one_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = Account(id=7, name="old", mango_api_key="k", mango_api_salt="s",
                      mango_api_url="https://app.mango-office.ru/vpbx/",
                      megaplan_url="crm.example.com", megaplan_username="u",
                      megaplan_password="p", token_hash=None, settings=Settings())
    _refuse_url.cache_clear()  # once per process: this test's own
    # stored before `account add` checked URLs: the CRM's jobs must not fail on it
    assert megaplan_credentials(account) is None
    assert megaplan_credentials(account) is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "Megaplan URL" in errors[0].getMessage()
    ok = dataclasses.replace(account, megaplan_url="https://crm.example.com/")
    credentials = megaplan_credentials(ok)
    assert credentials is not None
    assert credentials.base_url == "https://crm.example.com"

"""``service_health``: the newest success and failure per account and service, the same
whichever replica wrote last; ``ok`` derived from them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from lookup.accounts import add_account, upsert_default_account
from lookup.health import (
    CRM,
    PBX,
    AccountHealth,
    HealthNote,
    ServiceState,
    service_health,
    write_health,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def account_id(db: asyncpg.Connection) -> int:
    return await upsert_default_account(db, mango_api_key="k", mango_api_salt="s",
                                        mango_api_url="http://127.0.0.1:1/vpbx/",
                                        megaplan=(None, None, None))


@pytest.mark.parametrize(("ok_s", "error_s", "ok"), [
    (None, None, None), (1, None, True), (None, 1, False), (2, 1, True), (1, 2, False)])
def test_ok_is_whether_the_last_success_is_newer_than_the_last_failure(
    ok_s: int | None, error_s: int | None, ok: bool | None
) -> None:
    state = ServiceState(
        last_ok_at=None if ok_s is None else T0 + timedelta(seconds=ok_s),
        last_error_at=None if error_s is None else T0 + timedelta(seconds=error_s),
        last_error=None if error_s is None else "HTTP 500")
    assert state.ok is ok


def test_the_json_of_an_account_without_a_crm_gives_the_reason_instead() -> None:
    health = AccountHealth(pbx=ServiceState(last_ok_at=T0), crm=ServiceState())
    assert health.to_json(crm_configured=False) == {
        "pbx": {"ok": True, "last_ok_at": "2026-01-01T00:00:00Z", "last_error_at": None,
                "last_error": None},
        "crm": None, "crm_reason": "no CRM configured for this account"}
    assert health.to_json(crm_configured=True)["crm"] == {
        "ok": None, "last_ok_at": None, "last_error_at": None, "last_error": None}


async def test_an_account_never_noted_has_empty_states(
    db: asyncpg.Connection, account_id: int
) -> None:
    assert await service_health(db, account_id) == AccountHealth(ServiceState(), ServiceState())


async def test_the_newest_success_and_failure_win_whatever_order_replicas_write_in(
    db: asyncpg.Connection, account_id: int
) -> None:
    now = time.time()
    newer = HealthNote(account_id, PBX, ok_at=now - 1, error_at=now - 5, error="HTTP 503")
    older = HealthNote(account_id, PBX, ok_at=now - 10, error_at=now - 20, error="HTTP 429")
    await write_health(db, [newer])
    await write_health(db, [older])  # a slower replica's notes, written last
    pbx = (await service_health(db, account_id)).pbx
    assert pbx.last_error == "HTTP 503"
    assert pbx.last_ok_at is not None
    assert pbx.last_error_at is not None
    assert abs(pbx.last_ok_at.timestamp() - (now - 1)) < 0.001
    assert abs(pbx.last_error_at.timestamp() - (now - 5)) < 0.001
    assert pbx.ok is True

    await write_health(db, [HealthNote(account_id, PBX, error_at=now, error="no answer: timeout")])
    pbx = (await service_health(db, account_id)).pbx
    assert (pbx.ok, pbx.last_error) == (False, "no answer: timeout")
    assert pbx.last_ok_at is not None
    assert abs(pbx.last_ok_at.timestamp() - (now - 1)) < 0.001  # a failure keeps the success


async def test_services_and_accounts_are_apart_and_a_removed_account_is_skipped(
    db: asyncpg.Connection, account_id: int
) -> None:
    await add_account(db, name="acme", mango_api_key="acme", mango_api_salt="s",
                      mango_api_url="http://127.0.0.1:1/vpbx/")
    acme = await db.fetchval("SELECT id FROM accounts WHERE name = 'acme'")
    now = time.time()
    await write_health(db, [HealthNote(account_id, CRM, error_at=now, error="down"),
                            HealthNote(acme, PBX, ok_at=now),
                            HealthNote(10_000, PBX, ok_at=now)])  # gone meanwhile: skipped
    mine = await service_health(db, account_id)
    assert (mine.pbx.ok, mine.crm.ok, mine.crm.last_error) == (None, False, "down")
    theirs = await service_health(db, acme)
    assert (theirs.pbx.ok, theirs.crm.ok) == (True, None)
    assert await db.fetchval("SELECT count(*) FROM service_health") == 2


async def test_a_reason_is_stored_as_one_short_line(
    db: asyncpg.Connection, account_id: int
) -> None:
    await write_health(db, [HealthNote(account_id, CRM, error_at=time.time(),
                                       error="Megaplan answered 500:\n" + "x" * 500)])
    reason = (await service_health(db, account_id)).crm.last_error
    assert reason is not None
    assert len(reason) == 200
    assert "\n" not in reason
    assert reason.startswith("Megaplan answered 500: xxx")

"""``lookup.accounts.update_settings``: merged into the stored row, checked, saved or not at all."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import orjson
import pytest

from lookup.accounts import update_settings, upsert_default_account
from lookup.settings import Settings, SettingsError


@pytest.fixture
async def account(db: asyncpg.Connection) -> int:
    account_id: int = await upsert_default_account(
        db, mango_api_key="test-key", mango_api_salt="test-salt",
        mango_api_url="http://127.0.0.1:1/vpbx/", megaplan=(None, None, None))
    return account_id


async def _stored(db: asyncpg.Connection, account_id: int) -> Settings:
    raw = await db.fetchval("SELECT settings FROM accounts WHERE id = $1", account_id)
    return Settings.from_stored(orjson.loads(raw))


async def _waiting_for_locks(db: asyncpg.Connection, count: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'")
        if waiting >= count:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_update_replaces_only_the_keys_given_and_returns_what_it_saved(
    db: asyncpg.Connection, account: int
) -> None:
    saved = await update_settings(db, account, {"dry_run": True, "default_region": "KZ"})
    assert saved is not None
    assert saved.to_json() == {**Settings().to_json(), "dry_run": True, "default_region": "KZ"}
    assert await _stored(db, account) == saved


async def test_concurrent_updates_of_different_keys_both_stay(
    dsn: str, db: asyncpg.Connection, account: int
) -> None:
    first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        # Both updates start while the row is locked, so both read it before either
        # writes: only the lock taken on reading keeps the first one's key.
        async with db.transaction():
            await db.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account)
            updates = asyncio.gather(update_settings(first, account, {"dry_run": True}),
                                     update_settings(second, account, {"source_line": True}))
            assert await _waiting_for_locks(db, 2)
        await updates
    finally:
        await first.close()
        await second.close()
    stored = await _stored(db, account)
    assert (stored.dry_run, stored.source_line) == (True, True)


async def test_a_refused_update_changes_nothing(db: asyncpg.Connection, account: int) -> None:
    await update_settings(db, account, {"dry_run": True})
    with pytest.raises(SettingsError) as refused:
        await update_settings(db, account, {"source_line": True, "colour": "red"})
    assert refused.value.field == "colour"
    assert await _stored(db, account) == Settings(dry_run=True)


async def test_employees_and_deals_are_checked_against_the_crm_copy(
    db: asyncpg.Connection, account: int
) -> None:
    update = {"missed_incoming": "client_and_deal",
              "missed_deal": {"program_id": "7", "state_id": "70"},
              "missed_in_ivr": {"enabled": True, "employee_id": "1"}}
    await db.execute("INSERT INTO employees (account_id, crm_id, active) VALUES ($1, '1', false)",
                     account)
    await db.execute("INSERT INTO programs (account_id, crm_id) VALUES ($1, '7')", account)
    with pytest.raises(SettingsError) as no_state:
        await update_settings(db, account, update)
    assert no_state.value.field == "missed_deal"
    await db.execute("INSERT INTO program_states (account_id, program_id, crm_id)"
                     " VALUES ($1, '7', '70')", account)
    with pytest.raises(SettingsError) as inactive:
        await update_settings(db, account, update)
    assert inactive.value.field == "missed_in_ivr.employee_id"
    await db.execute("UPDATE employees SET active = true WHERE account_id = $1", account)
    saved = await update_settings(db, account, update)
    assert saved is not None
    assert saved.missed_in_ivr.employee_id == "1"


async def test_an_unknown_account_is_none(db: asyncpg.Connection, account: int) -> None:
    assert await update_settings(db, account + 1, {"dry_run": True}) is None

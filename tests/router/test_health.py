"""Health notes in memory: every answer is noted without the database; one write a
while carries them all, and a write that fails keeps them for the next."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from lookup.accounts import Account, fetch_accounts, upsert_default_account
from lookup.health import CRM, PBX, service_health
from router.health import HealthRecorder


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    made = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert made is not None
    yield made
    await made.close()


@pytest.fixture
async def account(pool: asyncpg.Pool) -> Account:
    async with pool.acquire() as con:
        await upsert_default_account(con, mango_api_key="k", mango_api_salt="s",
                                     mango_api_url="http://127.0.0.1:1/vpbx/",
                                     megaplan=(None, None, None))
        [found] = await fetch_accounts(con)
    return found


async def test_many_answers_make_one_note_per_account_and_service_and_one_write(
    pool: asyncpg.Pool, account: Account
) -> None:
    health = HealthRecorder(pool)
    for n in range(1000):  # a thousand routed calls: nothing touches the database
        health.pbx(account, None if n % 100 else "HTTP 503")
    health.crm(account.id, None)
    assert len(health.pending()) == 2
    await health.flush()
    assert health.pending() == []
    async with pool.acquire() as con:
        rows = await con.fetchval("SELECT count(*) FROM service_health")
        state = await service_health(con, account.id)
    assert rows == 2
    assert (state.pbx.ok, state.pbx.last_error, state.crm.ok) == (True, "HTTP 503", True)
    await health.flush()  # nothing new: nothing written


async def test_a_failed_write_keeps_the_notes_merged_with_what_came_meanwhile(
    dsn: str, account: Account, pool: asyncpg.Pool
) -> None:
    closed = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert closed is not None
    await closed.close()
    health = HealthRecorder(closed)
    health.pbx(account, "HTTP 500")
    with pytest.raises(asyncpg.InterfaceError):
        await health.flush()
    health.pbx(account, None)
    [note] = health.pending()
    assert note.error == "HTTP 500"
    assert note.ok_at is not None
    assert note.error_at is not None
    assert note.ok_at > note.error_at


async def test_a_removed_accounts_notes_are_dropped(
    pool: asyncpg.Pool, account: Account
) -> None:
    health = HealthRecorder(pool)
    health.pbx(account, None)
    health.crm(account.id, "down")
    health.forget(account)
    assert health.pending() == []


def test_commands_of_something_that_is_not_an_account_are_not_noted() -> None:
    class Bare:
        mango_api_key, mango_api_salt, mango_api_url = "k", "s", "http://x/"

    health = HealthRecorder(None)  # type: ignore[arg-type]  # no database needed
    health.pbx(Bare(), None)
    assert health.pending() == []
    health.note(1, PBX, None)
    health.note(1, CRM, "x")
    assert {(n.service, n.error) for n in health.pending()} == {(PBX, None), (CRM, "x")}

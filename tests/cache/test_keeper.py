"""The index keeper: every committed change reaches the running index within a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import asyncpg

from cache.accounts import AccountRegistry
from cache.index import IndexRegistry
from cache.keeper import IndexKeeper
from lookup.accounts import add_account, remove_account, save_settings
from lookup.rules import NO_CLIENT, Decision
from lookup.settings import Settings
from tests.conftest import load_records

NUMBER = "79161234567"
OTHER = "79167654321"
FRESHNESS_S = 1.0


def emp(crm_id: str, extension: str | None = "101", active: bool = True) -> dict[str, Any]:
    return {"type": "employee", "id": crm_id, "name": f"E{crm_id}", "extension": extension,
            "active": active}


def client(crm_id: str, *employees: str, phones: tuple[str, ...] = (NUMBER,)) -> dict[str, Any]:
    return {"type": "client", "id": crm_id, "name": f"C{crm_id}", "phones": list(phones),
            "responsibles": [{"type": "employee", "id": e} for e in employees]}


BASE = [emp("1", "101"), emp("2", "102"), client("10", "1", "2")]


@dataclass
class Running:
    keeper: IndexKeeper
    indexes: IndexRegistry
    accounts: AccountRegistry
    pool: asyncpg.Pool

    def decide(self, number: str, account: str = "default") -> Decision | None:
        found = self.accounts.by_name(account)
        index = None if found is None else self.indexes.get(found.id)
        return None if index is None else index.decide(number)


@asynccontextmanager
async def running_keeper(dsn: str) -> AsyncIterator[Running]:
    """A real keeper on ``dsn``, ready (indexes loaded); stopped and closed on exit."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    indexes, accounts = IndexRegistry(), AccountRegistry()
    keeper = IndexKeeper(dsn, pool, indexes, accounts)
    task = asyncio.create_task(keeper.run())
    try:
        await asyncio.wait_for(keeper.ready.wait(), timeout=15)
        assert indexes.loaded
        yield Running(keeper, indexes, accounts, pool)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await pool.close()


async def until(check: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until ``check()`` holds, polling; fails after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not check():
        if loop.time() - start > within:
            raise AssertionError(f"not seen within {within} s")
        await asyncio.sleep(0.005)
    return loop.time() - start


async def changes_within_a_second(
    k: Running, change: Callable[[], Awaitable[object]], check: Callable[[], bool]
) -> float:
    assert not check(), "the change must not be visible before it is made"
    await change()  # returns once committed
    elapsed = await until(check, within=FRESHNESS_S * 5)
    assert elapsed < FRESHNESS_S, f"seen after {elapsed:.3f} s"
    return elapsed


async def test_imported_new_responsible_is_routed_within_a_second(dsn: str) -> None:
    await load_records(dsn, BASE)
    async with running_keeper(dsn) as k:
        assert k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")
        await changes_within_a_second(
            k, lambda: load_records(dsn, [client("10", "2")]),
            lambda: k.decide(NUMBER) == Decision(NUMBER, None, "10", "2", "102"))


async def test_imported_new_client_is_routed_within_a_second(dsn: str) -> None:
    await load_records(dsn, BASE)
    async with running_keeper(dsn) as k:
        assert k.decide(OTHER) == Decision(OTHER, NO_CLIENT)
        await changes_within_a_second(
            k, lambda: load_records(dsn, [client("20", "2", phones=("8 916 765-43-21",))]),
            lambda: k.decide(OTHER) == Decision(OTHER, None, "20", "2", "102"))


async def test_imported_client_with_smaller_id_takes_the_number_within_a_second(
    dsn: str,
) -> None:
    await load_records(dsn, BASE)
    async with running_keeper(dsn) as k:
        await changes_within_a_second(
            k, lambda: load_records(dsn, [client("9", "2")]),
            lambda: k.decide(NUMBER) == Decision(NUMBER, None, "9", "2", "102"))


async def test_imported_removal_of_a_phone_is_seen_within_a_second(dsn: str) -> None:
    await load_records(dsn, [*BASE[:2], client("10", "1", phones=(NUMBER, OTHER))])
    async with running_keeper(dsn) as k:
        assert k.decide(OTHER) == Decision(OTHER, None, "10", "1", "101")
        await changes_within_a_second(
            k, lambda: load_records(dsn, [client("10", "1", phones=(NUMBER,))]),
            lambda: k.decide(OTHER) == Decision(OTHER, NO_CLIENT))
        assert k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")


async def test_dropped_client_is_seen_within_a_second(
    dsn: str, db: asyncpg.Connection
) -> None:
    await load_records(dsn, [*BASE, client("11", "2", phones=(OTHER,))])
    async with running_keeper(dsn) as k:
        await changes_within_a_second(
            k, lambda: db.execute("UPDATE clients SET dropped = true WHERE crm_id = '10'"),
            lambda: k.decide(NUMBER) == Decision(NUMBER, NO_CLIENT))
        assert k.decide(OTHER) == Decision(OTHER, None, "11", "2", "102")


async def test_blocked_employee_is_seen_within_a_second(
    dsn: str, db: asyncpg.Connection
) -> None:
    await load_records(dsn, [*BASE, client("11", "1", phones=(OTHER,))])
    async with running_keeper(dsn) as k:
        await changes_within_a_second(
            k, lambda: db.execute("UPDATE employees SET active = false WHERE crm_id = '1'"),
            lambda: k.decide(NUMBER) == Decision(NUMBER, None, "10", "2", "102"))
        assert k.decide(OTHER) == Decision(OTHER, "no_active_responsible", "11")


async def test_imported_extension_change_is_seen_within_a_second(dsn: str) -> None:
    await load_records(dsn, [*BASE, client("11", "1", phones=(OTHER,))])
    async with running_keeper(dsn) as k:
        await changes_within_a_second(
            k, lambda: load_records(dsn, [emp("1", "555")]),
            lambda: k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "555"))
        assert k.decide(OTHER) == Decision(OTHER, None, "11", "1", "555")


async def test_bulk_change_reloads_the_whole_index(dsn: str, db: asyncpg.Connection) -> None:
    numbers = [f"7926{i:07d}" for i in range(600)]
    await load_records(dsn, [*BASE[:2], *(client(str(1000 + i), "1", phones=(n,))
                                          for i, n in enumerate(numbers))])
    async with running_keeper(dsn) as k:
        assert k.decide(numbers[-1]) == Decision(numbers[-1], None, "1599", "1", "101")
        account = k.accounts.by_name("default")
        assert account is not None
        index = k.indexes.get(account.id)
        assert index is not None

        def all_moved() -> bool:
            return all(k.decide(n) == Decision(n, None, str(1000 + i), "2", "102")
                       for i, n in enumerate(numbers))

        # one statement, 600 rows: the trigger asks for a reload, not 600 refreshes
        await changes_within_a_second(
            k, lambda: db.execute("UPDATE client_responsibles SET ref_id = '2'"), all_moved)
        assert k.indexes.get(account.id) is index
        assert index.overlay_size == 0  # rebuilt, not patched


async def test_bulk_import_of_new_clients_is_served_after_a_reload(dsn: str) -> None:
    await load_records(dsn, BASE)
    numbers = [f"7927{i:07d}" for i in range(700)]
    async with running_keeper(dsn) as k:
        account = k.accounts.by_name("default")
        assert account is not None
        index = k.indexes.get(account.id)
        assert index is not None
        await changes_within_a_second(
            k, lambda: load_records(dsn, [client(str(5000 + i), "2", phones=(n,))
                                          for i, n in enumerate(numbers)]),
            lambda: all(k.decide(n) == Decision(n, None, str(5000 + i), "2", "102")
                        for i, n in enumerate(numbers)))
        assert index.overlay_size == 0
        assert k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")


async def _add_account(dsn: str, name: str, key: str) -> int:
    con = await asyncpg.connect(dsn)
    try:
        await add_account(con, name=name, mango_api_key=key, mango_api_salt="salt",
                          mango_api_url="http://127.0.0.1:1/vpbx/")
        account_id: int = await con.fetchval("SELECT id FROM accounts WHERE name = $1", name)
        return account_id
    finally:
        await con.close()


async def test_new_account_gets_its_own_index(dsn: str) -> None:
    await load_records(dsn, BASE)
    async with running_keeper(dsn) as k:
        second = await _add_account(dsn, "second", "second-key")
        await load_records(dsn, [emp("1", "201"), client("10", "1")], account_id=second)
        elapsed = await until(
            lambda: k.decide(NUMBER, "second") == Decision(NUMBER, None, "10", "1", "201"))
        assert elapsed < FRESHNESS_S
        assert k.indexes.get(second) is not None
        assert k.accounts.by_key("second-key") is not None
        assert k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")


async def test_removed_account_loses_its_index_within_a_second(dsn: str) -> None:
    await load_records(dsn, BASE)
    second = await _add_account(dsn, "second", "second-key")
    await load_records(dsn, [emp("1", "201"), client("10", "1")], account_id=second)
    async with running_keeper(dsn) as k:
        assert k.indexes.get(second) is not None

        async def remove() -> None:
            con = await asyncpg.connect(dsn)
            try:
                assert await remove_account(con, "second")
            finally:
                await con.close()

        await changes_within_a_second(
            k, remove,
            lambda: k.indexes.get(second) is None and k.accounts.by_key("second-key") is None)
        assert k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")


async def test_default_region_change_applies_to_caller_numbers_within_a_second(
    dsn: str, db: asyncpg.Connection
) -> None:
    await load_records(dsn, [*BASE, client("30", "2", phones=("+1 650 253 0000",))])
    async with running_keeper(dsn) as k:
        assert k.decide("6502530000") == Decision("76502530000", NO_CLIENT)
        account = k.accounts.by_name("default")
        assert account is not None
        us = Settings.from_stored({"default_region": "US"})
        await changes_within_a_second(
            k, lambda: save_settings(db, account.id, us),
            lambda: k.decide("6502530000") == Decision("16502530000", None, "30", "2", "102"))


async def test_imported_employee_of_an_existing_client_is_routed_within_a_second(
    dsn: str,
) -> None:
    await load_records(dsn, [*BASE, client("11", "3", phones=(OTHER,))])
    async with running_keeper(dsn) as k:
        assert k.decide(OTHER) == Decision(OTHER, "no_active_responsible", "11")
        await changes_within_a_second(
            k, lambda: load_records(dsn, [emp("3", "103")]),
            lambda: k.decide(OTHER) == Decision(OTHER, None, "11", "3", "103"))


async def test_two_accounts_route_one_caller_to_their_own_employees(dsn: str) -> None:
    await load_records(dsn, BASE)
    second = await _add_account(dsn, "second", "second-key")
    await load_records(dsn, [emp("1", "201"), emp("3", "203"), client("10", "3", "1")],
                       account_id=second)
    async with running_keeper(dsn) as k:
        assert k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")
        assert k.decide(NUMBER, "second") == Decision(NUMBER, None, "10", "3", "203")
        # a change in one account leaves the other alone
        await changes_within_a_second(
            k, lambda: load_records(dsn, [emp("3", "203", active=False)], account_id=second),
            lambda: k.decide(NUMBER, "second") == Decision(NUMBER, None, "10", "1", "201"))
        assert k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")
        await load_records(dsn, [client("10", "2")])
        await until(lambda: k.decide(NUMBER) == Decision(NUMBER, None, "10", "2", "102"))
        assert k.decide(NUMBER, "second") == Decision(NUMBER, None, "10", "1", "201")


async def _listener_pids(db: asyncpg.Connection) -> list[int]:
    rows = await db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'")
    return [r["pid"] for r in rows]


async def test_change_committed_while_the_listener_was_down_is_seen_after_reconnect(
    dsn: str, db: asyncpg.Connection, pg_dsn: str
) -> None:
    await load_records(dsn, BASE)
    name = await db.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(pg_dsn)  # another database: it may lock this one's doors
    try:
        async with running_keeper(dsn) as k:
            pids = await _listener_pids(db)
            assert len(pids) == 1, pids
            # keep the keeper out while the change is committed: no notification can reach it
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                assert await db.fetchval("SELECT pg_terminate_backend($1, 5000)", pids[0])
                await db.execute("UPDATE employees SET extension = '777' WHERE crm_id = '1'")
                await asyncio.sleep(0.2)  # the keeper notices the loss, fails to reconnect
                assert k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")
            finally:
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await until(lambda: k.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "777"),
                        within=5)
            new_pids = await _listener_pids(db)
            assert len(new_pids) == 1
            assert new_pids != pids
            # and it listens again: later changes keep arriving
            await changes_within_a_second(
                k, lambda: load_records(dsn, [client("10", "2")]),
                lambda: k.decide(NUMBER) == Decision(NUMBER, None, "10", "2", "102"))
    finally:
        await admin.close()


async def test_truncate_reaches_the_index(dsn: str) -> None:
    """TRUNCATE names no rows; the keeper rebuilds every account from what is left."""
    await load_records(dsn, [
        {"type": "employee", "id": "1", "extension": "101", "active": True},
        {"type": "client", "id": "10", "phones": ["79161234567"],
         "responsibles": [{"type": "employee", "id": "1"}]},
    ])
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    indexes = IndexRegistry()
    keeper = IndexKeeper(dsn, pool, indexes, AccountRegistry())
    task = asyncio.create_task(keeper.run())
    try:
        await asyncio.wait_for(keeper.ready.wait(), 10)
        (account_id,) = indexes.account_ids()
        index = indexes.get(account_id)
        assert index is not None
        assert index.decide("79161234567") is not None
        assert index.decide("79161234567").routed  # type: ignore[union-attr]
        await pool.execute("TRUNCATE client_phones")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            decision = indexes.get(account_id).decide("79161234567")  # type: ignore[union-attr]
            if decision is not None and decision.reason == "no_client":
                break
            await asyncio.sleep(0.02)
        assert decision is not None
        assert decision.reason == "no_client"
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await pool.close()

"""Routing alone or beside other replicas: the advisory lock and the claims on each side."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from router.claims import Claims, claim_key
from router.keys import REPLICAS
from router.replicas import LOCK_CLASS, ReplicaLock
from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED
from tests.router.test_routing import decisions


async def solo_soon(svc: Service) -> bool:
    """Routing alone: a replica that takes the lock waits out one lease first."""
    return await until(lambda: solo(svc), within=10.0)


def solo(svc: Service) -> bool:
    lock: ReplicaLock = svc.client.app[REPLICAS]
    return lock.solo


async def until(check: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def until_false(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def kill_solo_lock_connection(db: asyncpg.Connection) -> None:
    """End the session holding the exclusive replicas' lock, as a network fault would."""
    pid = await db.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1"
        " AND mode = 'ExclusiveLock' AND granted", LOCK_CLASS)
    await db.execute("SELECT pg_terminate_backend($1)", pid)


async def claimed(dsn: str, entry_id: str, within: float = 3.0) -> bool:
    con = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while True:  # looks at least once
            if await con.fetchval("SELECT count(*) FROM route_claims WHERE entry_id = $1",
                                  entry_id):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
    finally:
        await con.close()


async def test_a_lone_replica_routes_solo_and_still_records_the_claim(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, ALL)
    svc = await service_factory()
    assert await solo_soon(svc)
    await svc.event("events/call", call_event("e1", ROUTED))
    assert [r.payload["to_number"] for r in await svc.pbx.wait_routes(1)] == ["101"]
    assert await claimed(dsn, "e1")


async def test_a_joining_replica_ends_solo_routing_and_sees_its_claims(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, ALL)
    answers = {"ROUTER_CLAIM_TIMEOUT_MS": "5000"}  # as below: the database answers
    first = await service_factory(**answers)
    assert await solo_soon(first)
    await first.event("events/call", call_event("e1", ROUTED))
    await first.pbx.wait_routes(1)
    second = await service_factory(**answers)  # its start waits until the first stepped down
    assert not solo(first)
    assert not solo(second)
    await second.event("events/call", call_event("e1", ROUTED))  # re-sent to the newcomer
    rows = await decisions(dsn, 2)
    assert sorted(r["outcome"] for r in rows) == ["claimed_elsewhere", "routed"]
    assert len(first.pbx.routes()) == 1


async def test_two_replicas_given_the_same_triggers_route_each_once(
    service_factory: ServiceFactory, dsn: str
) -> None:
    await load_records(dsn, ALL)
    # a database that answers: a busy test machine must not make it one that does not (past
    # ROUTER_CLAIM_TIMEOUT_MS, 50 ms by default, a replica routes from memory: another test)
    answers = {"ROUTER_CLAIM_TIMEOUT_MS": "5000"}
    first, second = await service_factory(**answers), await service_factory(**answers)
    sends = [svc.event("events/call", call_event(f"e{i}", ROUTED))
             for i in range(10) for svc in (first, second)]
    assert all(status == 200 for status, _ in await asyncio.gather(*sends))
    routes = await first.pbx.wait_routes(11, within=1.0)
    assert sorted(r.payload["call_id"] for r in routes) == sorted(f"e{i}-ivr" for i in range(10))


async def test_the_last_replica_routes_solo_again_once_the_other_is_gone(
    service_factory: ServiceFactory, dsn: str
) -> None:
    first, second = await service_factory(), await service_factory()
    assert not solo(first)
    await second.client.close()
    assert await until(lambda: solo(first), within=10.0)


async def test_a_replica_going_solo_remembers_what_others_routed_lately(
    service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection
) -> None:
    await load_records(dsn, ALL)
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    # another replica (now gone) routed e1; the PBX re-sends its trigger here
    await db.execute("INSERT INTO route_claims (account_id, entry_id) VALUES ($1, 'e1')",
                     account_id)
    svc = await service_factory()
    assert await solo_soon(svc)
    await svc.event("events/call", call_event("e1", ROUTED))
    rows = await decisions(dsn, 1)
    assert [r["outcome"] for r in rows] == ["duplicate"]
    assert svc.pbx.routes() == []


async def test_a_replica_that_loses_its_lock_stops_routing_solo_until_it_has_it_again(
    service_factory: ServiceFactory, db: asyncpg.Connection
) -> None:
    svc = await service_factory()
    assert await solo_soon(svc)
    await kill_solo_lock_connection(db)
    assert await until(lambda: not solo(svc), within=0.5)  # it hears the close at once
    assert await solo_soon(svc)


async def test_a_replica_beside_another_claims_before_it_routes(
    service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection
) -> None:
    await load_records(dsn, ALL)
    await db.execute("SELECT pg_advisory_lock_shared($1, 0)", LOCK_CLASS)  # another replica
    svc = await service_factory()
    assert not solo(svc)
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    await db.execute("INSERT INTO route_claims (account_id, entry_id) VALUES ($1, 'e1')",
                     account_id)  # ... which has just claimed e1
    await svc.event("events/call", call_event("e1", ROUTED))
    rows = await decisions(dsn, 1)
    assert [r["outcome"] for r in rows] == ["claimed_elsewhere"]
    assert svc.pbx.routes() == []


async def test_a_replica_that_cannot_take_the_lock_routes_nothing_the_database_claims(
    service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection
) -> None:
    await load_records(dsn, ALL)
    svc = await service_factory()
    assert await solo_soon(svc)
    # Its lock connection dies, and another replica routing alone takes the lock first.
    await kill_solo_lock_connection(db)
    await db.execute("SELECT pg_advisory_lock($1, 0)", LOCK_CLASS)
    assert await until(lambda: not solo(svc), within=0.5)
    await svc.event("events/call", call_event("e1", ROUTED))
    rows = await decisions(dsn, 1)
    assert [r["outcome"] for r in rows] == ["no_lock"]
    assert svc.pbx.routes() == []
    # the claim was given back, for a replica that holds the lock
    assert await until_false(lambda: claimed(dsn, "e1", within=0.0))
    await db.execute("SELECT pg_advisory_unlock($1, 0)", LOCK_CLASS)  # that one is gone
    assert await until(lambda: solo(svc), within=20.0)
    await svc.event("events/call", call_event("e2", ROUTED))
    assert len(await svc.pbx.wait_routes(1)) == 1


@pytest.fixture
async def claims(dsn: str) -> AsyncIterator[Claims]:
    """A running ``Claims`` on the test database, with its own one-connection pool."""
    await load_records(dsn, ALL)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    made = Claims(pool, within_ms=200)
    made.start()
    yield made
    await made.close()
    await pool.close()


async def test_claims_answer_route_or_why_not(claims: Claims, db: asyncpg.Connection) -> None:
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    claims.held, claims.lease_until = True, math.inf
    assert await claims.claim_shared(account_id, "e1") is None  # ours: route it
    assert await claims.claim_shared(account_id, "e1") == "claimed_elsewhere"
    claims.held = False
    assert await claims.claim_shared(account_id, "e2") == "no_lock"
    async with db.transaction():  # the database does not answer: route from memory
        await db.execute("LOCK TABLE route_claims IN ACCESS EXCLUSIVE MODE")
        assert await claims.claim_shared(account_id, "e3") is None


async def test_claims_not_answered_in_time_are_warned_of_once_a_while_not_once_each(
    claims: Claims, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    claims.held, claims.lease_until = True, math.inf

    def warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno == logging.WARNING
                and r.getMessage().startswith("route claims not answered in time")]

    async with db.transaction():  # the database does not answer
        await db.execute("LOCK TABLE route_claims IN ACCESS EXCLUSIVE MODE")
        for i in range(3):
            assert await claims.claim_shared(account_id, f"late-{i}") is None
        assert [getattr(r, "claims", None) for r in warnings()] == [1]  # the first at once
        monkeypatch.setattr("router.claims._TOLD_S", 0.0)  # the while has passed
        assert await claims.claim_shared(account_id, "late-3") is None
    assert [getattr(r, "claims", None) for r in warnings()] == [1, 3]  # with the count


async def test_solo_claims_are_not_waited_for_and_a_flush_writes_them_all(
    claims: Claims, db: asyncpg.Connection
) -> None:
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    claims.solo = claims.held = True
    claims.lease_until = math.inf
    for i in range(50):
        assert await claims.claim_shared(account_id, f"e{i}") is None  # no wait
    claims.solo = False
    await claims.flush(within=3.0)
    assert await db.fetchval("SELECT count(*) FROM route_claims") == 50


async def test_only_the_newest_recent_claims_are_remembered(
    dsn: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await load_records(dsn, ALL)
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    await db.execute(
        "INSERT INTO route_claims (account_id, entry_id, claimed_at)"
        " SELECT $1, 'e' || i, now() - (10 - i) * interval '1 second'"
        " FROM generate_series(1, 5) AS i", account_id)
    await db.execute(
        "INSERT INTO route_claims (account_id, entry_id, claimed_at)"
        " VALUES ($1, 'old', now() - interval '1 hour')", account_id)
    monkeypatch.setattr("router.claims._REMEMBER", 3)
    claims = Claims(db, within_ms=50)  # type: ignore[arg-type]  # only remember_recent runs
    assert await claims.remember_recent(db, within=5.0) == 3
    assert [claims.claim_here(claim_key(account_id, f"e{i}")) for i in (5, 4, 3)] == [False] * 3
    assert claims.claim_here(claim_key(account_id, "e2"))  # older than the three newest
    assert claims.claim_here(claim_key(account_id, "old"))  # older than ten minutes


async def test_a_waited_claim_is_not_held_back_by_the_spacing_of_solo_claims(
    claims: Claims, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("router.claims._SOLO_SPACING", 1.0)
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    claims.solo = claims.held = True
    claims.lease_until = math.inf
    assert await claims.claim_shared(account_id, "owed-1") is None  # written at once
    await claims.flush(within=1.0)
    for i in range(1200):  # spaced: they wait their turn, more than two batches of them
        assert await claims.claim_shared(account_id, f"owed-{i + 2}") is None
    claims.lease_until = 0.0  # the lease lapsed: the next claim is waited for
    loop = asyncio.get_running_loop()
    asked = loop.time()
    assert await claims.claim_shared(account_id, "waited") == "no_lock"  # answered
    assert loop.time() - asked < 0.5  # not after the spacing, nor behind the backlog

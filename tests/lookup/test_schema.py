"""Migrations: applied once each, even by two processes starting at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources

import asyncpg
import orjson
import pytest

from lookup.calls import fold_pending
from lookup.journal import JournalEntry, write_journal
from lookup.schema import apply_migrations
from tests.conftest import throwaway_database


@pytest.fixture
async def empty_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """A brand-new database with no schema (not copied from the migrated template)."""
    async with throwaway_database(pg_dsn, "template0") as url:
        yield url


def _migration_files() -> list[str]:
    return sorted(f.name for f in resources.files("lookup.migrations").iterdir()
                  if f.name.endswith(".sql"))


async def test_two_connections_migrating_at_once_apply_each_file_exactly_once(
    empty_dsn: str,
) -> None:
    files = _migration_files()
    assert files, "no migrations found"
    first, second = await asyncpg.connect(empty_dsn), await asyncpg.connect(empty_dsn)
    try:
        assert await first.fetchval("SELECT to_regclass('accounts')") is None
        applied = await asyncio.gather(apply_migrations(first), apply_migrations(second))
        assert sorted(applied[0] + applied[1]) == files
        assert sorted(applied, key=len) == [[], files]
        rows = await first.fetch("SELECT name FROM schema_migrations ORDER BY name")
        assert [r["name"] for r in rows] == files
        assert await first.fetchval("SELECT to_regclass('accounts')") is not None
        # the advisory lock was given back: a third run finds nothing to do
        assert await apply_migrations(second) == []
        held = await first.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())")
        assert held == 0
    finally:
        await first.close()
        await second.close()


async def test_migrations_on_a_migrated_database_apply_nothing(dsn: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        assert await apply_migrations(con) == []
        rows = await con.fetch("SELECT name FROM schema_migrations ORDER BY name")
        assert [r["name"] for r in rows] == _migration_files()
    finally:
        await con.close()


async def test_analyze_keeps_statistics_only_of_what_queries_filter_on(
    db: asyncpg.Connection,
) -> None:
    account_id = await db.fetchval(
        "INSERT INTO accounts (name, mango_api_key, mango_api_salt, mango_api_url)"
        " VALUES ('stats', 'k', 's', 'http://pbx.test/') RETURNING id")
    await db.execute(
        """INSERT INTO call_events (account_id, kind, entry_id, payload, journal_key)
           SELECT $1, 'summary', 'e' || i, jsonb_build_object('seq', i), md5(i::text)
           FROM generate_series(1, 200) AS i""", account_id)
    await db.execute(
        """INSERT INTO calls (account_id, entry_id, started_at, last_at, events, leg_number,
                              legs)
           SELECT $1, 'e' || i, now(), now(), 1, '7916' || i, ARRAY['c' || i]
           FROM generate_series(1, 200) AS i
           ON CONFLICT DO NOTHING""", account_id)
    await db.execute(
        """INSERT INTO crm_actions (account_id, entry_id, action, payload)
           SELECT $1, 'e' || i, 'record_call', jsonb_build_object('seq', i)
           FROM generate_series(1, 200) AS i""", account_id)
    await db.execute(
        """INSERT INTO decisions (account_id, entry_id, call_id, number, outcome, latency_us)
           SELECT $1, 'e' || i, 'c' || i, '7916' || i, 'routed', i
           FROM generate_series(1, 200) AS i""", account_id)
    tables = ["call_events", "crm_actions", "calls", "decisions"]
    await db.execute(f"ANALYZE {', '.join(tables)}")
    rows = await db.fetch("SELECT tablename, attname FROM pg_stats"
                          " WHERE tablename = ANY($1::text[])", tables)
    kept = {(r["tablename"], r["attname"]) for r in rows}
    assert {("call_events", "entry_id"), ("crm_actions", "entry_id"), ("calls", "started_at"),
            ("calls", "number"), ("decisions", "entry_id")} <= kept
    assert not kept & {("call_events", "payload"), ("call_events", "journal_key"),
                       ("crm_actions", "payload"), ("calls", "legs"), ("calls", "leg_number"),
                       ("decisions", "number"), ("decisions", "outcome")}


async def test_marks_journaled_before_0015_get_their_accounts_and_are_folded(
    empty_dsn: str,
) -> None:
    """An upgrade with calls not folded yet: 0015 fills each mark's accounts from the
    journal, and the fold that locks them folds the mark."""
    con = await asyncpg.connect(empty_dsn)
    try:
        await con.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY,"
                          " applied_at timestamptz NOT NULL DEFAULT now())")
        for name in _migration_files():
            if name >= "0015":
                break
            text = (resources.files("lookup.migrations") / name).read_text(encoding="utf-8")
            async with con.transaction():
                await con.execute(text)
                await con.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
        ids = [await con.fetchval(
            "INSERT INTO accounts (name, mango_api_key, mango_api_salt, mango_api_url)"
            " VALUES ($1, $1, 's', 'http://pbx.test/') RETURNING id", name)
            for name in ("a", "b")]
        await write_journal(con, [JournalEntry(a, "call", f"e{a}", f"c{a}", 1, "Appeared", "ivr",
                                               orjson.dumps({"entry_id": f"e{a}"}).decode())
                                  for a in ids])

        assert (await apply_migrations(con))[0] == "0015_folds_lock_accounts_first.sql"
        assert await con.fetchval("SELECT accounts FROM calls_pending") == ids
        assert await fold_pending(con) == 1
        assert await con.fetchval("SELECT count(*) FROM calls") == 2
    finally:
        await con.close()

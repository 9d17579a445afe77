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


async def test_marks_journaled_before_and_during_0015_are_folded(empty_dsn: str) -> None:
    """An upgrade while the previous version journals: a statement that waited for the
    migration's lock ran the trigger it had, so its mark has no accounts either. Such
    marks have them read from the journal, are folded, and the statement is not refused."""
    con, other = await asyncpg.connect(empty_dsn), await asyncpg.connect(empty_dsn)

    async def journal(on: asyncpg.Connection, entry: str) -> None:
        await write_journal(on, [JournalEntry(a, "call", f"{entry}{a}", f"c{a}", 1, "Appeared",
                                              "ivr", orjson.dumps({"entry_id": entry}).decode())
                                 for a in ids])

    try:
        await con.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY,"
                          " applied_at timestamptz NOT NULL DEFAULT now())")
        texts = {name: (resources.files("lookup.migrations") / name).read_text(encoding="utf-8")
                 for name in _migration_files() if name < "0016"}
        for name, text in texts.items():
            if name.startswith("0015"):
                break
            async with con.transaction():
                await con.execute(text)
                await con.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
        ids = [await con.fetchval(
            "INSERT INTO accounts (name, mango_api_key, mango_api_salt, mango_api_url)"
            " VALUES ($1, $1, 's', 'http://pbx.test/') RETURNING id", name)
            for name in ("a", "b")]
        await journal(other, "before")  # its connection keeps the trigger it ran

        name = "0015_folds_lock_accounts_first.sql"
        async with con.transaction():  # as apply_migrations applies it
            await con.execute(texts[name])
            await con.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            during = asyncio.create_task(journal(other, "during"))
            await asyncio.sleep(0.3)
            assert not during.done()  # waiting for the migration's lock
        await asyncio.wait_for(during, 5)
        await journal(other, "after")

        assert [r["accounts"] for r in await con.fetch(
            "SELECT accounts FROM calls_pending ORDER BY id")] == [None, None, sorted(ids)]
        assert await fold_pending(con) == 3
        assert await con.fetchval("SELECT count(*) FROM calls") == 6
    finally:
        await con.close()
        await other.close()

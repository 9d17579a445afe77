"""bench.pages: seeding a small journal, timing every page query on it, the journal's
statement with the calls trigger off and on, and the printed table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import orjson

from bench.pages import (
    BUDGET_MS,
    PagesResult,
    format_report,
    journal_cost,
    page_queries,
    seed,
    time_pages,
)
from bench.report import machine_description
from lookup.calls import calls_page


async def test_seeding_two_thousand_calls_then_timing_every_page_query(dsn: str) -> None:
    seeded = await seed(dsn, 2000, days=10, clients=500)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT count(*) FROM calls WHERE account_id = $1",
                                   seeded.account_id) == 2000  # the trigger made every row
        assert seeded.events > 2000 * 5
        assert 2000 * 0.7 < seeded.decisions < 2000
        assert await pool.fetchval("SELECT count(*) FROM busy_legs") == 0  # was off
        enabled = await pool.fetchval(
            "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'journal_legs'")
        assert enabled == "O"  # and is on again
        deep = await calls_page(pool, seeded.account_id, before=seeded.deep_cursor, limit=500)
        assert 150 <= len(deep.calls) <= 250  # 90 % of the way back: the oldest tenth
        assert len(page_queries(seeded)) == 10
        timings = await time_pages(pool, seeded, runs=3)
        journal = await journal_cost(pool, seeded.account_id, rounds=4)
    finally:
        await pool.close()
    assert [t.name for t in timings] == [q.name for q in page_queries(seeded)]
    assert all(t.runs == 3 and 0 < t.median_ms <= t.p95_ms <= t.max_ms for t in timings)
    assert all(t.budget_ms == BUDGET_MS for t in timings)
    assert [(j.shape, j.events, j.statements) for j in journal] == [
        ("one event", 1, 28), ("10 new calls' first events", 10, 4), ("10 whole calls", 70, 4)]
    assert all(j.trigger_us > 0 and j.server_on_us > j.trigger_us for j in journal)
    report = format_report(PagesResult(machine=machine_description(), seeded=seeded,
                                       timings=timings, journal=journal))
    assert "seeded 2,000 calls" in report
    assert all(t.name in report for t in timings)
    assert "10 whole calls" in report


def test_a_tiny_run_prints_the_table_and_writes_its_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.pages", "--calls", "500", "--runs", "2",
         "--journal-rounds", "4", "--out", str(tmp_path)],
        capture_output=True, timeout=110, check=False,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    # the budget is the benchmark's verdict (1 when a page is over it), not this test's
    assert proc.returncode in (0, 1), proc.stderr.decode()[-2000:]
    got = orjson.loads((tmp_path / "pages.json").read_bytes())
    assert got["seeded"]["calls"] == 500
    assert len(got["timings"]) == 10
    assert [t["name"] for t in got["http"]] == [  # the pages themselves, signed in
        "page /overview", "page /calls", "page /calls, deep", "page /calls?number= client",
        "page /calls?number= line", "page /calls/{entry_id}", "page /settings",
        "page /employees"]
    assert all(t["runs"] == 2 for t in got["http"])
    assert [j["shape"] for j in got["journal"]] == [
        "one event", "10 new calls' first events", "10 whole calls"]
    verdict = b"every page within 100 ms at p95" if proc.returncode == 0 else b"OVER BUDGET: "
    assert verdict in proc.stdout

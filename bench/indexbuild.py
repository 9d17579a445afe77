"""Index figures, in a fresh process (``python -m bench.indexbuild``): the time to build
the ``default`` account's index from PostgreSQL, the resident memory it adds, and the
time of one lookup with normalisation. Prints one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil

from bench.stats import summarize

__all__ = ["main", "measure"]


async def measure(dsn: str, numbers: list[str]) -> dict[str, Any]:
    from cache.loader import load_account_index

    proc = psutil.Process()
    con = await asyncpg.connect(dsn)
    try:
        account_id = await con.fetchval("SELECT id FROM accounts WHERE name = 'default'")
        if account_id is None:
            raise RuntimeError("no account named default")
        gc.collect()
        rss_before = proc.memory_info().rss
        t0 = time.perf_counter()
        index = await load_account_index(con, account_id, "RU")
        seconds = time.perf_counter() - t0
        gc.collect()
        rss_after = proc.memory_info().rss
    finally:
        await con.close()
    clock = time.perf_counter_ns
    decide = index.decide
    for n in numbers[:1000]:  # warm up
        decide(n)
    times: list[float] = []
    routed = 0
    for n in numbers:
        t = clock()
        d = decide(n)
        times.append((clock() - t) / 1000)
        if d is not None and d.routed:
            routed += 1
    s = summarize(times)
    return {
        "phones": len(index),
        "seconds": round(seconds, 3),
        "rss_mb": round((rss_after - rss_before) / 2**20, 1),
        "rss_total_mb": round(rss_after / 2**20, 1),
        "lookups": len(times),
        "lookups_routed": routed,
        "lookup_median_us": round(s.p50, 3),
        "lookup_p99_us": round(s.p99, 3),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.indexbuild")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--numbers", type=Path, required=True, help="one number a line")
    a = p.parse_args(argv)
    numbers = [n for n in a.numbers.read_text().splitlines() if n.strip()]
    from lookup.embedded import ensure_embedded

    dsn = ensure_embedded(a.data_dir)
    result = asyncio.run(measure(dsn, numbers))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()

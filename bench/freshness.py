"""Freshness: from a change committed in PostgreSQL to the changed decision served.

Runs as its own process next to a running ``serve`` (``python -m bench.freshness``,
with the service's environment, so it joins the same embedded PostgreSQL). Each
change moves one client's responsible to another employee with one SQL statement;
the time from its commit to the first ``GET /route`` answer with the new extension
is one sample. Every change is undone the same way (a second sample), so the data
ends as it began. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp import ClientSession, ClientTimeout

from bench.stats import summarize

__all__ = ["main", "measure"]

_UPDATE = """UPDATE client_responsibles r SET ref_id = $3
FROM clients c
WHERE r.client_uid = c.uid AND c.account_id = $1 AND c.crm_id = $2 AND r.kind = 'employee'"""
_POLL_S = 0.001
_TIMEOUT_S = 5.0


async def _served(session: ClientSession, url: str, number: str) -> str | None:
    async with session.get(f"{url}/route", params={"number": number}) as resp:
        body: Any = orjson.loads(await resp.read())
        return str(body["extension"]) if resp.status == 200 and body.get("extension") else None


async def _one(
    con: asyncpg.Connection, session: ClientSession, url: str, account_id: int,
    client_id: str, number: str, employee_id: str, extension: str,
) -> float | None:
    """Seconds from commit to served, None if not served within the timeout."""
    status = await con.execute(_UPDATE, account_id, client_id, employee_id)
    committed = time.monotonic()  # autocommit: the statement's answer follows its commit
    if status != "UPDATE 1":
        raise RuntimeError(f"client {client_id}: {status}")
    deadline = committed + _TIMEOUT_S
    while time.monotonic() < deadline:
        if await _served(session, url, number) == extension:
            return time.monotonic() - committed
        await asyncio.sleep(_POLL_S)
    return None


async def measure(
    dsn: str, url: str, candidates: list[dict[str, str]], employees: list[list[str]],
    changes: int,
) -> dict[str, Any]:
    con = await asyncpg.connect(dsn)
    samples: list[float] = []
    timeouts = 0
    skipped = 0
    try:
        account_id = await con.fetchval("SELECT id FROM accounts WHERE name = 'default'")
        if account_id is None:
            raise RuntimeError("no account named default")
        owners = {e[1]: e[0] for e in employees}  # extension -> employee id
        async with ClientSession(timeout=ClientTimeout(total=2)) as session:
            k = 0
            for cand in candidates:
                if len(samples) + timeouts >= changes:
                    break
                number, ext = cand["number"], cand["extension"]
                if await _served(session, url, number) != ext or ext not in owners:
                    skipped += 1  # not what the data says: leave it alone
                    continue
                other = employees[k % len(employees)]
                k += 1
                if other[1] == ext:
                    other = employees[k % len(employees)]
                    k += 1
                for emp_id, new_ext in ((other[0], other[1]), (owners[ext], ext)):
                    took = await _one(
                        con, session, url, account_id, cand["client_id"], number, emp_id, new_ext
                    )
                    if took is None:
                        timeouts += 1
                    else:
                        samples.append(took * 1000)
    finally:
        await con.close()
    s = summarize(samples)
    return {
        "changes": len(samples) + timeouts,
        "served": len(samples),
        "timeouts": timeouts,
        "skipped": skipped,
        "p50_ms": None if math.isnan(s.p50) else round(s.p50, 2),
        "p99_ms": None if math.isnan(s.p99) else round(s.p99, 2),
        "max_ms": None if math.isnan(s.max) else round(s.max, 2),
        "samples_ms": [round(v, 3) for v in samples],
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.freshness")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8080")
    p.add_argument("--input", type=Path, required=True, help="JSON: candidates and employees")
    p.add_argument("--changes", type=int, default=100)
    a = p.parse_args(argv)
    spec = orjson.loads(a.input.read_bytes())
    from lookup.embedded import ensure_embedded

    dsn = ensure_embedded(a.data_dir)
    result = asyncio.run(
        measure(dsn, a.url, spec["candidates"], spec["employees"], a.changes)
    )
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()

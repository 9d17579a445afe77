"""Measure the change-to-routing delay: a responsible changed in the CRM (through its
v3 API, as a user would) until a running ``serve`` routes the number to the new one.

    python -m bench.sync_delay --router http://127.0.0.1:8080 \\
        --megaplan http://127.0.0.1:9001 --changes 20 --poll 2

Changes are spread at random over the poll interval, so the delays sample the
whole of it (the bound is the poll interval plus the pass plus the index's 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import aiohttp

from megaplan.client import MegaplanClient
from megaplan.credentials import MegaplanCredentials

__all__ = ["main"]


async def _routed_to(session: aiohttp.ClientSession, router: str, number: str) -> str | None:
    async with session.get(f"{router}/route", params={"number": number}) as resp:
        body = await resp.json()
    employee = body.get("employee_id")
    return employee if isinstance(employee, str) else None


async def measure(router: str, megaplan: str, user: str, password: str, changes: int,
                  poll_s: float, within: float) -> list[float]:
    creds = MegaplanCredentials(base_url=megaplan, username=user, password=password)
    rng = random.Random(1)
    delays: list[float] = []
    async with MegaplanClient(creds, rate_per_second=None) as crm, \
            aiohttp.ClientSession() as session:
        employees = [e.id for e in await crm.employees() if e.active]
        picked: list[tuple[str, str]] = []
        async for client in crm.contractors():
            if client.dropped or not client.phones or client.kind != "human":
                continue
            async with session.get(f"{router}/route",
                                   params={"number": client.phones[0]}) as resp:
                body = await resp.json()
            if body.get("client_id") == client.id and "number" in body:
                picked.append((client.id, body["number"]))
            if len(picked) == changes:
                break
        for client_id, number in picked:
            current = await _routed_to(session, router, number)
            target = rng.choice([e for e in employees if e != current])
            await asyncio.sleep(rng.uniform(0, poll_s))
            await crm.update_client(client_id, responsible_ids=[target])
            landed = time.monotonic()
            while await _routed_to(session, router, number) != target:
                if time.monotonic() - landed > within:
                    raise SystemExit(f"client {client_id}: not routed to {target} in {within} s")
                await asyncio.sleep(0.01)
            delays.append(time.monotonic() - landed)
            print(f"client {client_id}: {delays[-1]:.3f} s", flush=True)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_delay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--router", default="http://127.0.0.1:8080")
    parser.add_argument("--megaplan", default="http://127.0.0.1:9001")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="demo")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--poll", type=float, default=30.0, help="the serve's poll interval")
    args = parser.parse_args()
    delays = asyncio.run(measure(args.router, args.megaplan, args.user, args.password,
                                 args.changes, args.poll, within=args.poll + 30))
    ordered = sorted(delays)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(f"{len(delays)} changes: min {ordered[0]:.3f} s, median "
          f"{statistics.median(ordered):.3f} s, p95 {p95:.3f} s, max {ordered[-1]:.3f} s"
          f" (poll interval {args.poll:g} s)")


if __name__ == "__main__":
    main()

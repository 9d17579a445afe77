"""``mango-router demo``: both emulators, a sync from them, the service and one routed call.

The demo never touches the user's data: it runs on an embedded PostgreSQL in a
throwaway folder of its own, whatever ``DATABASE_URL`` and ``ROUTER_DATA_DIR``
say, and that folder is deleted when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import dataclasses
import shutil
import signal
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, web

from cli.command import Subparsers
from cli.database import find_account, open_database
from cli.sync import ProgressLine, full_sync
from emulators.megaplan import MegaplanState, generate, serve_megaplan
from emulators.pbx import PbxCaller, PbxState, create_pbx_app
from emulators.pbx_users import users_for
from lookup.accounts import update_settings
from lookup.embedded import ensure_embedded
from lookup.phones import phone_key
from lookup.sql_lookup import decide_sql
from router.app import create_app
from router.config import Config

__all__ = ["add_parsers", "throwaway_config"]

_NEW_NUMBER = "79990001234"  # nobody in the emulated CRM has it


def add_parsers(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser("demo", parents=[common],
                          help="emulators, a sync from them, and serve: try a call "
                               "(on a throwaway database of its own)")
    demo.add_argument("--clients", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--megaplan-port", type=int, default=0, help="0: any free port")
    demo.add_argument("--pbx-port", type=int, default=0, help="0: any free port")
    demo.set_defaults(run=demo_command)


async def throwaway_config(config: Config, data_dir: Path, *, pbx_url: str,
                           megaplan_url: str) -> Config:
    """``config`` pointed at a new embedded database under ``data_dir`` and the emulators."""
    dsn = await asyncio.to_thread(ensure_embedded, data_dir, throwaway=True)
    return dataclasses.replace(
        config, database_url=dsn, data_dir=data_dir,
        mango_api_key="demo", mango_api_salt="demo", mango_api_url=pbx_url,
        megaplan_url=megaplan_url, megaplan_username="demo", megaplan_password="demo")


async def demo_command(config: Config, args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="mango-router-demo-"))
    # at exit, after the embedded server (registered later, so stopped first) is gone
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    return await _demo(config, args, data_dir)


async def _demo(config: Config, args: argparse.Namespace, data_dir: Path) -> int:
    crm = generate(args.clients, args.seed)
    pbx_state = PbxState(api_key="demo", salt="demo", users=users_for(crm.employees.values()))
    pbx_runner = web.AppRunner(create_pbx_app(pbx_state), access_log=None)
    await pbx_runner.setup()
    app_runner: web.AppRunner | None = None
    try:
        await web.TCPSite(pbx_runner, "127.0.0.1", args.pbx_port).start()
        pbx_url = f"http://127.0.0.1:{pbx_runner.addresses[0][1]}/vpbx/"
        async with serve_megaplan(crm, "127.0.0.1", args.megaplan_port) as megaplan_url:
            demo = await throwaway_config(config, data_dir, pbx_url=pbx_url,
                                          megaplan_url=megaplan_url)
            print(f"Megaplan emulator: {megaplan_url} ({args.clients} clients, seed {args.seed})"
                  f"\nPBX emulator:      {pbx_url} ({len(pbx_state.users)} users)"
                  f"\nDatabase:          a throwaway one in {data_dir} (your data is untouched)",
                  flush=True)
            async with open_database(demo) as con:
                account = await find_account(con, "default")
                assert account is not None
                progress = ProgressLine(account.name)
                report = await full_sync(con, account, demo, progress=progress)
                progress.done()
                print(report.summary(), flush=True)
                number, extension = "", ""
                for row in sorted(crm.clients.values(), key=lambda r: int(r.id)):
                    key = phone_key(row.phones[0]) if row.phones else None
                    decision = None if key is None else await decide_sql(con, account.id, key)
                    if decision is not None and decision.routed:
                        number, extension = str(key), str(decision.extension)
                        break
            app_runner = web.AppRunner(create_app(demo), access_log=None)
            await app_runner.setup()
            await web.TCPSite(app_runner, demo.host, demo.port).start()
            base = f"http://{demo.host}:{demo.port}"
            pbx_state.callback_url = f"{base}/mango"
            print(f"\nServing on {base} (integration URL {base}/mango).\nTry:\n"
                  f"  curl '{base}/route?number={number}'\n", flush=True)
            await _demo_call(pbx_state, base, number, extension)
            async with open_database(demo) as con:
                account = await find_account(con, "default")
                assert account is not None
                await update_settings(con, account.id, {"accepted_incoming": "client"})
            await _new_caller(crm, pbx_state, base, str(extension))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):  # before saying so: a quick Ctrl-C
                loop.add_signal_handler(sig, stop.set)
            print("Ctrl-C stops the demo.", flush=True)
            await stop.wait()
    finally:
        if app_runner is not None:
            await app_runner.cleanup()
        await pbx_runner.cleanup()
    return 0


async def _new_caller(crm: MegaplanState, pbx: PbxState, base: str, extension: str) -> None:
    """A number nobody has calls and is answered: the automation makes its client."""
    number = _NEW_NUMBER
    entry = f"demo-new-{int(time.time())}"
    now = int(time.time())
    line = {"number": "74951112233", "line_number": "74951112233"}
    legs = [("ivr", "Appeared", "ivr", {"number": number}, line),
            ("emp", "Appeared", "abonent", {"number": number, "taken_from_call_id": "ivr"},
             {"extension": extension, "line_number": "74951112233"}),
            ("ivr", "Disconnected", "ivr", {"number": number}, line),
            ("emp", "Connected", "abonent", {"number": number, "taken_from_call_id": "ivr"},
             {"extension": extension, "line_number": "74951112233"})]
    async with ClientSession() as session:
        caller = PbxCaller(session, f"{base}/mango", api_key="demo", salt="demo", state=pbx)
        for seq, (leg, state, location, frm, to) in enumerate(legs, start=1):
            await caller.post("events/call", {
                "entry_id": entry, "call_id": f"{entry}-{leg}", "timestamp": now + seq,
                "seq": seq, "call_state": state, "location": location, "from": frm, "to": to})
        for _ in range(200):  # the outbox works within ms; give it 10 s
            if crm.created_client_ids:
                break
            await asyncio.sleep(0.05)
    if not crm.created_client_ids:
        print(f"A call from the new number {number} made no client (see the logs).",
              flush=True)
        return
    client = crm.clients[crm.created_client_ids[-1]]
    print(f"A call from the new number {number}, answered at extension {extension}, made "
          f"Megaplan client {client.id} «{client.name}» (accepted_incoming=client); "
          f"its next call routes to {extension}:\n  curl '{base}/route?number={number}'\n",
          flush=True)


async def _demo_call(pbx: PbxState, base: str, number: str, extension: str) -> None:
    """A call from outside, as the PBX posts it; the service routes it to the responsible."""
    async with ClientSession() as session:
        caller = PbxCaller(session, f"{base}/mango", api_key="demo", salt="demo", state=pbx)
        entry = f"demo-{int(time.time())}"
        started = time.monotonic()
        status, _ = await caller.post("events/call", {
            "entry_id": entry, "call_id": f"{entry}-ivr", "timestamp": int(time.time()),
            "seq": 1, "call_state": "Appeared", "location": "ivr",
            "from": {"number": number},
            "to": {"number": "74951112233", "line_number": "74951112233"}})
        routes = await pbx.wait_routes(1, within=5.0)
    if routes:
        took = (routes[-1].received_at - started) * 1000
        print(f"A call from {number} (webhook answered {status}) was routed to extension "
              f"{routes[-1].payload.get('to_number')} (expected {extension}) in {took:.1f} ms.",
              flush=True)
    else:
        print(f"A call from {number} was not routed (webhook answered {status}).", flush=True)

"""The sync commands of ``mango-router``: ``sync``, ``employee``, ``emulate megaplan``, ``demo``.

``router.cli`` dispatches here and lends its database helper (a migrated
connection with the ``default`` account from the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import ClientSession

from lookup.accounts import Account, fetch_accounts
from lookup.conn import Conn
from megaplan.sync import AccountSync, SyncOptions, SyncReport, megaplan_credentials
from megaplan.sync_extensions import EXTENSION_RE, set_extension, unmatched_employees
from megaplan.sync_store import read_state, status_json
from router.config import Config
from router.pbx_client import PbxClient
from router.pbx_http import HttpPool

__all__ = [
    "add_parsers",
    "demo_command",
    "employee_command",
    "emulate_megaplan",
    "full_sync",
    "sync_command",
]

Database = Callable[[Config], AbstractAsyncContextManager[Conn]]
_PROGRESS_EVERY_S = 1.0


def add_parsers(sub: Any, emulators: Any) -> None:
    sync = sub.add_parser("sync", help="one full sync from Megaplan and MANGO OFFICE users")
    sync.add_argument("--account", default="default")
    sync.add_argument("--status", action="store_true",
                      help="print the account's sync status as JSON instead")

    employee = sub.add_parser("employee", help="employees' extensions")
    emp = employee.add_subparsers(dest="employee_command", required=True)
    set_ext = emp.add_parser("set-extension",
                             help="set an employee's extension by hand (it wins over the PBX)")
    set_ext.add_argument("employee_id")
    set_ext.add_argument("extension", nargs="?")
    set_ext.add_argument("--auto", action="store_true",
                         help="forget the hand-set extension; the next sync matches by e-mail")
    set_ext.add_argument("--account", default="default")
    unmatched = emp.add_parser("unmatched", help="employees no PBX user matches by e-mail")
    unmatched.add_argument("--account", default="default")

    megaplan = emulators.add_parser("megaplan", help="the Megaplan API v3 emulator (demo/demo)")
    megaplan.add_argument("--host", default="127.0.0.1")
    megaplan.add_argument("--port", type=int, default=9001)
    megaplan.add_argument("--clients", type=int, default=1000)
    megaplan.add_argument("--seed", type=int, default=1)
    megaplan.add_argument("--latency-ms", type=float, default=0.0,
                          help="added to every answer")

    demo = sub.add_parser("demo", help="emulators, a sync from them, and serve: try a call")
    demo.add_argument("--clients", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--megaplan-port", type=int, default=0, help="0: any free port")
    demo.add_argument("--pbx-port", type=int, default=0, help="0: any free port")


async def _find(con: Conn, name: str) -> Account | None:
    return next((a for a in await fetch_accounts(con) if a.name == name), None)


def _unknown(name: str) -> int:
    print(f"mango-router: unknown account {name!r}"
          " (set MANGO_API_KEY and MANGO_API_SALT for 'default')", file=sys.stderr)
    return 2


class _ProgressLine:
    """One line, rewritten in place on a terminal; a line a second otherwise."""

    def __init__(self, account: str) -> None:
        self._account = account
        self._tty = sys.stderr.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, report: SyncReport) -> None:
        now = time.monotonic()
        if now - self._last < _PROGRESS_EVERY_S:
            return
        self._last = now
        line = (f"sync {self._account}: {report.clients} clients read, {report.written} written,"
                f" {report.errors} errors, {report.requests} requests,"
                f" {now - self._started:.0f} s")
        print(f"\r{line}" if self._tty else line, end="" if self._tty else "\n",
              file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._tty and self._last:
            print(file=sys.stderr)


async def full_sync(con: Conn, account: Account, config: Config, *,
                    progress: Callable[[SyncReport], None] | None = None) -> SyncReport:
    """One full pass for ``account``, capped at MEGAPLAN_RATE requests per second."""
    pbx_http = HttpPool()
    try:
        async with AccountSync(
            account, con, PbxClient(pbx_http), options=SyncOptions(rate=config.megaplan_rate),
            progress=progress,
        ) as sync:
            report, _ = await sync.full()
    finally:
        await pbx_http.close()
    return report


async def sync_command(config: Config, args: argparse.Namespace, database: Database) -> int:
    async with database(config) as con:
        account = await _find(con, args.account)
        if account is None:
            return _unknown(args.account)
        configured = megaplan_credentials(account) is not None
        if args.status:
            status = status_json(account.name, configured, await read_state(con, account.id),
                                 datetime.now(UTC))
            print(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
            return 0
        if not configured:
            print(f"mango-router: account {account.name!r} has no Megaplan settings"
                  " (MEGAPLAN_URL, MEGAPLAN_USERNAME, MEGAPLAN_PASSWORD)", file=sys.stderr)
            return 2
        progress = _ProgressLine(account.name)
        report = await full_sync(con, account, config, progress=progress)
        progress.done()
    print(report.summary())
    return 0 if report.complete and not report.errors else 1


async def employee_command(config: Config, args: argparse.Namespace, database: Database) -> int:
    async with database(config) as con:
        account = await _find(con, args.account)
        if account is None:
            return _unknown(args.account)
        if args.employee_command == "unmatched":
            for e in await unmatched_employees(con, account.id):
                state = "active" if e["active"] else "inactive"
                print(f"{e['id']}\t{e['name']}\t{e['email'] or '-'}\t{state}")
            return 0
        if args.auto == (args.extension is not None):
            print("mango-router: give an EXTENSION or --auto", file=sys.stderr)
            return 2
        if args.extension is not None and not EXTENSION_RE.match(args.extension):
            print("mango-router: an extension is 1-16 digits", file=sys.stderr)
            return 2
        employee = await set_extension(con, account.id, args.employee_id, args.extension)
    if employee is None:
        print(f"mango-router: no employee {args.employee_id!r} in {args.account!r}",
              file=sys.stderr)
        return 1
    print(orjson.dumps(employee).decode())
    return 0


async def emulate_megaplan(args: argparse.Namespace) -> int:
    from emulators.megaplan import run_megaplan_emulator

    print(f"Megaplan emulator: http://{args.host}:{args.port} (user demo, password demo),"
          f" {args.clients} clients, seed {args.seed}", file=sys.stderr, flush=True)
    await run_megaplan_emulator(args.host, args.port, clients=args.clients, seed=args.seed,
                                latency_ms=args.latency_ms)
    return 0


async def demo_command(config: Config, args: argparse.Namespace, database: Database) -> int:
    """Both emulators on loopback, a full sync from them, then serve and route one call."""
    from aiohttp import web

    from emulators.megaplan import generate, serve_megaplan
    from emulators.pbx import PbxCaller, PbxState, create_pbx_app
    from emulators.pbx_users import users_for
    from lookup.db import database_url
    from lookup.phones import phone_key
    from lookup.sql_lookup import decide_sql
    from router.app import create_app

    crm = generate(args.clients, args.seed)
    pbx_state = PbxState(api_key="demo", salt="demo", users=users_for(crm.employees.values()))
    pbx_runner = web.AppRunner(create_pbx_app(pbx_state), access_log=None)
    await pbx_runner.setup()
    app_runner: web.AppRunner | None = None
    try:
        await web.TCPSite(pbx_runner, "127.0.0.1", args.pbx_port).start()
        pbx_url = f"http://127.0.0.1:{pbx_runner.addresses[0][1]}/vpbx/"
        async with serve_megaplan(crm, "127.0.0.1", args.megaplan_port) as megaplan_url:
            demo = dataclasses.replace(
                config, database_url=await database_url(config),  # one embedded start
                mango_api_key="demo", mango_api_salt="demo", mango_api_url=pbx_url,
                megaplan_url=megaplan_url, megaplan_username="demo", megaplan_password="demo")
            print(f"Megaplan emulator: {megaplan_url} ({args.clients} clients, seed {args.seed})"
                  f"\nPBX emulator:      {pbx_url} ({len(pbx_state.users)} users)",
                  flush=True)
            async with database(demo) as con:
                account = await _find(con, "default")
                assert account is not None
                progress = _ProgressLine(account.name)
                report = await full_sync(con, account, demo, progress=progress)
                progress.done()
                print(report.summary(), flush=True)
                number, extension = "", ""
                for row in sorted(crm.clients.values(), key=lambda r: int(r.id)):
                    key = phone_key(row.phones[0]) if row.phones else None
                    decision = None if key is None else await decide_sql(con, account.id, key)
                    if decision is not None and decision.routed:
                        number, extension = str(key), str(decision.to_json()["extension"])
                        break
            app_runner = web.AppRunner(create_app(demo), access_log=None)
            await app_runner.setup()
            await web.TCPSite(app_runner, demo.host, demo.port).start()
            base = f"http://{demo.host}:{demo.port}"
            pbx_state.callback_url = f"{base}/mango"
            print(f"\nServing on {base} (integration URL {base}/mango).\nTry:\n"
                  f"  curl '{base}/route?number={number}'\n"
                  f"  mango-router route {number}\n", flush=True)
            await _demo_call(PbxCaller, pbx_state, base, number, extension)
            print("Ctrl-C stops the demo.", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        if app_runner is not None:
            await app_runner.cleanup()
        await pbx_runner.cleanup()
    return 0


async def _demo_call(caller_type: Any, pbx: Any, base: str, number: str,
                     extension: str) -> None:
    """A call from outside, as the PBX posts it; the service routes it to the responsible."""
    async with ClientSession() as session:
        caller = caller_type(session, f"{base}/mango", api_key="demo", salt="demo", state=pbx)
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

"""``mango-router sync`` and ``mango-router employee``: the CRM copy and extensions."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from cli.command import Subparsers
from cli.database import find_account, open_database, unknown_account
from lookup.accounts import Account
from lookup.conn import Conn
from mango.client import open_pbx_client
from router.config import Config
from sync.account import AccountSync, SyncOptions, SyncReport, megaplan_credentials
from sync.extensions import EXTENSION_RE, set_extension, unmatched_employees
from sync.store import read_state, status_json

__all__ = ["ProgressLine", "add_parsers", "full_sync"]

_PROGRESS_EVERY_S = 1.0


def add_parsers(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    sync = sub.add_parser("sync", help="one full sync from Megaplan and MANGO OFFICE users",
                          parents=[common])
    sync.add_argument("--account", default="default")
    sync.add_argument("--status", action="store_true",
                      help="print the account's sync status as JSON instead")
    sync.set_defaults(run=sync_command)

    employee = sub.add_parser("employee", help="employees' extensions", parents=[common])
    emp = employee.add_subparsers(dest="employee_command", required=True)
    set_ext = emp.add_parser("set-extension", parents=[common],
                             help="set an employee's extension by hand (it wins over the PBX)")
    set_ext.add_argument("employee_id")
    set_ext.add_argument("extension", nargs="?")
    set_ext.add_argument("--auto", action="store_true",
                         help="forget the hand-set extension; the next sync matches by e-mail")
    set_ext.add_argument("--account", default="default")
    set_ext.set_defaults(run=employee_command)
    unmatched = emp.add_parser("unmatched", help="employees no PBX user matches by e-mail",
                               parents=[common])
    unmatched.add_argument("--account", default="default")
    unmatched.set_defaults(run=employee_command)


class ProgressLine:
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
    async with open_pbx_client(ca_file=config.mango_ca_file) as pbx, AccountSync(
        account, con, pbx, options=SyncOptions(rate=config.megaplan_rate), progress=progress,
    ) as sync:
        report, _ = await sync.full()
    return report


async def sync_command(config: Config, args: argparse.Namespace) -> int:
    async with open_database(config) as con:
        account = await find_account(con, args.account)
        if account is None:
            return unknown_account(args.account)
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
        progress = ProgressLine(account.name)
        report = await full_sync(con, account, config, progress=progress)
        progress.done()
    print(report.summary())
    return 0 if report.complete and not report.errors else 1


async def employee_command(config: Config, args: argparse.Namespace) -> int:
    async with open_database(config) as con:
        account = await find_account(con, args.account)
        if account is None:
            return unknown_account(args.account)
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

"""``mango-router import`` and ``mango-router route``: the data behind routing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from cli.command import Subparsers
from cli.database import find_account, open_database, unknown_account
from lookup.importer import import_lines
from lookup.phones import phone_key
from lookup.sql_lookup import decide_sql
from router.config import Config

__all__ = ["add_parsers"]


def add_parsers(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    imp = sub.add_parser("import", help="load employees and clients from a JSONL file",
                         parents=[common])
    imp.add_argument("file", type=Path)
    imp.add_argument("--account", default="default")
    imp.set_defaults(run=import_file)

    route = sub.add_parser("route", help="print the routing decision for a caller number",
                           parents=[common])
    route.add_argument("number")
    route.add_argument("--account", default="default")
    route.set_defaults(run=route_number)


async def import_file(config: Config, args: argparse.Namespace) -> int:
    async with open_database(config) as con:
        account = await find_account(con, args.account)
        if account is None:
            return unknown_account(args.account)
        try:
            stream = args.file.open("rb")
        except OSError as exc:
            print(f"mango-router: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        with stream:
            report = await import_lines(con, account.id, stream,
                                        region=account.settings.default_region)
    for error in report.errors:
        print(f"{args.file}:{error.line}: {error.reason}", file=sys.stderr)
    print(f"imported {report.employees} employees, {report.clients} clients, "
          f"{report.phones} phones; {len(report.errors)} problems")
    return 1 if report.errors else 0


async def route_number(config: Config, args: argparse.Namespace) -> int:
    """The decision ``GET /route`` gives, read from the database (no server needed)."""
    async with open_database(config) as con:
        account = await find_account(con, args.account)
        if account is None:
            print(orjson.dumps({"number": args.number, "error": "unknown account"}).decode())
            return 2
        key = phone_key(args.number, account.settings.default_region)
        if key is None:
            print(orjson.dumps({"number": args.number, "error": "not a phone number"}).decode())
            return 2
        decision = await decide_sql(con, account.id, key)
    print(orjson.dumps(decision.to_json()).decode())
    return 0 if decision.routed else 1

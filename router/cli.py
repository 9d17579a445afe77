"""``mango-router`` (also ``python -m router``): serve, import, route, accounts, emulators.

Configuration comes from the environment, ``.env`` and flags (``router.config``);
a bad value exits 2 naming the variable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import uvloop

from lookup.accounts import (
    AccountExists,
    add_account,
    fetch_accounts,
    remove_account,
    upsert_default_account,
)
from lookup.conn import Conn
from lookup.db import connect, database_url
from lookup.importer import import_lines
from lookup.phones import phone_key
from lookup.sql_lookup import decide_sql
from router import sync_cli
from router.config import DEFAULT_MANGO_API_URL, Config, ConfigError, load_config
from router.logs import setup_logging

logger = logging.getLogger(__name__)

__all__ = ["main"]

Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mango-router", description=__doc__)
    parser.add_argument("--data-dir", help="where the embedded database lives (ROUTER_DATA_DIR)")
    parser.add_argument("--database-url", help="PostgreSQL DSN (DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="listen address (ROUTER_HOST)")
    serve.add_argument("--port", help="listen port (ROUTER_PORT)")

    imp = sub.add_parser("import", help="load employees and clients from a JSONL file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--account", default="default")

    route = sub.add_parser("route", help="print the routing decision for a caller number")
    route.add_argument("number")
    route.add_argument("--account", default="default")

    account = sub.add_parser("account", help="manage accounts")
    acc = account.add_subparsers(dest="account_command", required=True)
    add = acc.add_parser("add", help="add an account; prints its admin token once")
    add.add_argument("name")
    add.add_argument("--mango-key", required=True)
    add.add_argument("--mango-salt", required=True)
    add.add_argument("--mango-url", default=DEFAULT_MANGO_API_URL)
    add.add_argument("--megaplan-url")
    add.add_argument("--megaplan-user")
    add.add_argument("--megaplan-password")
    acc.add_parser("list", help="list accounts")
    remove = acc.add_parser("remove", help="remove an account and all its data")
    remove.add_argument("name")

    emulate = sub.add_parser("emulate", help="run an emulator (for tests and demos)")
    emu = emulate.add_subparsers(dest="emulator", required=True)
    pbx = emu.add_parser("pbx", help="the MANGO OFFICE VPBX emulator")
    pbx.add_argument("--host", default="127.0.0.1")
    pbx.add_argument("--port", type=int, default=9002)
    pbx.add_argument("--seed", type=int, default=1)
    pbx.add_argument("--key", default="demo")
    pbx.add_argument("--salt", default="demo")
    pbx.add_argument("--clients", type=int, default=1000,
                     help="size of the matching Megaplan emulator's data set")
    sync_cli.add_parsers(sub, emu)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    overrides = {
        "ROUTER_DATA_DIR": args.data_dir,
        "DATABASE_URL": args.database_url,
        "ROUTER_HOST": getattr(args, "host", None) if args.command == "serve" else None,
        "ROUTER_PORT": getattr(args, "port", None) if args.command == "serve" else None,
    }
    try:
        config = load_config(overrides)
    except ConfigError as exc:
        print(f"mango-router: bad configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    long_running = args.command in ("serve", "demo", "emulate")
    setup_logging(config.log_level or ("INFO" if long_running else "WARNING"))
    if args.command == "serve":
        _serve(config)
        return
    commands: dict[str, Command] = {
        "import": _import,
        "route": _route,
        "account": _account,
        "emulate": _emulate,
        "sync": _sync,
        "employee": _employee,
        "demo": _demo,
    }
    try:
        code = uvloop.run(commands[args.command](config, args))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        where = ("DATABASE_URL" if config.database_url
                 else f"the embedded database in {config.data_dir}")
        print(f"mango-router: cannot use {where}: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


def _serve(config: Config) -> None:
    from aiohttp import web

    from router.app import create_app
    from router.gc_tuning import tune_gc

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = create_app(config)
    app.on_startup.append(tune_gc)  # after the cleanup contexts: the index is built
    # A deep accept queue: at the default 128 a burst of new PBX connections overflowed
    # it, and each dropped SYN cost its request a 1 s retransmit (measured in bench/).
    web.run_app(app, host=config.host, port=config.port, access_log=None, print=None,
                shutdown_timeout=10, backlog=1024)


@asynccontextmanager
async def _database(config: Config) -> AsyncIterator[Conn]:
    """A connection on a migrated schema, with the ``default`` account from the environment."""
    con = await connect(await database_url(config))
    try:
        if config.mango_api_key and config.mango_api_salt:
            await upsert_default_account(
                con, mango_api_key=config.mango_api_key, mango_api_salt=config.mango_api_salt,
                mango_api_url=config.mango_api_url,
                megaplan=(config.megaplan_url, config.megaplan_username,
                          config.megaplan_password),
            )
        yield con
    finally:
        await con.close()


async def _account_id(con: Conn, name: str) -> tuple[int, str] | None:
    row = await con.fetchrow("SELECT id, settings->>'default_region' AS region"
                             " FROM accounts WHERE name = $1", name)
    return None if row is None else (row["id"], row["region"] or "RU")


async def _import(config: Config, args: argparse.Namespace) -> int:
    async with _database(config) as con:
        found = await _account_id(con, args.account)
        if found is None:
            print(f"mango-router: unknown account {args.account!r}"
                  " (set MANGO_API_KEY and MANGO_API_SALT for 'default')", file=sys.stderr)
            return 2
        try:
            stream = args.file.open("rb")
        except OSError as exc:
            print(f"mango-router: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        with stream:
            report = await import_lines(con, found[0], stream, region=found[1])
    for error in report.errors:
        print(f"{args.file}:{error.line}: {error.reason}", file=sys.stderr)
    print(f"imported {report.employees} employees, {report.clients} clients, "
          f"{report.phones} phones; {len(report.errors)} problems")
    return 1 if report.errors else 0


async def _route(config: Config, args: argparse.Namespace) -> int:
    async with _database(config) as con:
        found = await _account_id(con, args.account)
        if found is None:
            print(orjson.dumps({"number": args.number, "error": "unknown account"}).decode())
            return 2
        key = phone_key(args.number, found[1])
        if key is None:
            print(orjson.dumps({"number": args.number, "error": "not a phone number"}).decode())
            return 2
        decision = await decide_sql(con, found[0], key)
    print(orjson.dumps(decision.to_json()).decode())
    return 0 if decision.routed else 1


async def _account(config: Config, args: argparse.Namespace) -> int:
    async with _database(config) as con:
        if args.account_command == "list":
            for a in await fetch_accounts(con):
                crm = a.megaplan_url or "-"
                print(f"{a.name}\t{a.mango_api_url}\tmegaplan: {crm}")
            return 0
        if args.account_command == "remove":
            if not await remove_account(con, args.name):
                print(f"mango-router: no account {args.name!r}", file=sys.stderr)
                return 1
            print(f"removed {args.name}")
            return 0
        try:
            token = await add_account(
                con, name=args.name, mango_api_key=args.mango_key,
                mango_api_salt=args.mango_salt, mango_api_url=args.mango_url,
                megaplan=(args.megaplan_url, args.megaplan_user, args.megaplan_password),
            )
        except AccountExists as exc:
            print(f"mango-router: {exc}", file=sys.stderr)
            return 1
    print(f"account {args.name} added; its admin token (shown once):\n{token}")
    return 0


async def _emulate(config: Config, args: argparse.Namespace) -> int:
    from emulators.pbx import PbxState, run_pbx_emulator

    if args.emulator == "megaplan":
        return await _emulate_megaplan(args)
    if args.emulator == "pbx":
        from emulators.pbx_users import matching_users

        users = matching_users(args.clients, args.seed)  # the Megaplan emulator's employees
        await run_pbx_emulator(args.host, args.port,
                               PbxState(api_key=args.key, salt=args.salt, users=users))
    return 0


# --- CRM sync (issue #5): the commands themselves are in router.sync_cli ----------------
async def _sync(config: Config, args: argparse.Namespace) -> int:
    return await sync_cli.sync_command(config, args, _database)


async def _employee(config: Config, args: argparse.Namespace) -> int:
    return await sync_cli.employee_command(config, args, _database)


async def _demo(config: Config, args: argparse.Namespace) -> int:
    return await sync_cli.demo_command(config, args, _database)


async def _emulate_megaplan(args: argparse.Namespace) -> int:
    return await sync_cli.emulate_megaplan(args)

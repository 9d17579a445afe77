"""``mango-router account add/list/remove/token``: the companies one deployment serves."""

from __future__ import annotations

import argparse
import sys

from cli.command import Subparsers
from cli.database import open_database
from lookup.accounts import (
    AccountExists,
    account_size,
    add_account,
    fetch_accounts,
    new_token,
    remove_account,
)
from router.config import DEFAULT_MANGO_API_URL, Config

__all__ = ["add_parsers"]


def add_parsers(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    account = sub.add_parser("account", help="manage accounts", parents=[common])
    acc = account.add_subparsers(dest="account_command", required=True)
    add = acc.add_parser("add", help="add an account; prints its admin token once",
                         parents=[common])
    add.add_argument("name")
    add.add_argument("--mango-key", required=True)
    add.add_argument("--mango-salt", required=True)
    add.add_argument("--mango-url", default=DEFAULT_MANGO_API_URL)
    add.add_argument("--megaplan-url")
    add.add_argument("--megaplan-user")
    add.add_argument("--megaplan-password")
    add.set_defaults(run=add_command)
    listing = acc.add_parser("list", help="list accounts", parents=[common])
    listing.set_defaults(run=list_command)
    remove = acc.add_parser("remove", help="remove an account and all its data (asks first)",
                            parents=[common])
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="do not ask")
    remove.set_defaults(run=remove_command)
    token = acc.add_parser("token", help="issue a new admin token (the old one stops working)",
                           parents=[common])
    token.add_argument("name")
    token.set_defaults(run=token_command)


async def add_command(config: Config, args: argparse.Namespace) -> int:
    async with open_database(config) as con:
        try:
            token = await add_account(
                con, name=args.name, mango_api_key=args.mango_key,
                mango_api_salt=args.mango_salt, mango_api_url=args.mango_url,
                megaplan=(args.megaplan_url, args.megaplan_user, args.megaplan_password),
            )
        except AccountExists as exc:
            print(f"mango-router: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:  # a name or a URL that will not do
            print(f"mango-router: {exc}", file=sys.stderr)
            return 2
    print(f"account {args.name} added; its admin token (shown once):\n{token}")
    return 0


async def list_command(config: Config, _args: argparse.Namespace) -> int:
    async with open_database(config) as con:
        for a in await fetch_accounts(con):
            print(f"{a.name}\t{a.mango_api_url}\tmegaplan: {a.megaplan_url or '-'}")
    return 0


async def remove_command(config: Config, args: argparse.Namespace) -> int:
    async with open_database(config) as con:
        size = await account_size(con, args.name)
        if size is None:
            print(f"mango-router: no account {args.name!r}", file=sys.stderr)
            return 1
        if not args.yes and not _confirmed(args.name, *size):
            print("mango-router: not removed", file=sys.stderr)
            return 1
        await remove_account(con, args.name)
    print(f"removed {args.name}")
    return 0


def _confirmed(name: str, clients: int, events: int) -> bool:
    if not sys.stdin.isatty():
        print(f"mango-router: removing {name!r} deletes its {clients} clients and {events} "
              "call events; say --yes to do it without a terminal", file=sys.stderr)
        return False
    answer = input(f"Remove account {name!r} with its {clients} clients and {events} call "
                   "events? Type its name to confirm: ")
    return answer.strip() == name


async def token_command(config: Config, args: argparse.Namespace) -> int:
    async with open_database(config) as con:
        token = await new_token(con, args.name)
    if token is None:
        print(f"mango-router: no account {args.name!r}", file=sys.stderr)
        return 1
    print(f"a new admin token for {args.name} (shown once; the old one no longer works):\n"
          f"{token}")
    return 0

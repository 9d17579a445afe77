"""``mango-router`` (also ``python -m router``): serve, data, accounts, sync, replay,
emulators, demo.

Configuration comes from the environment, ``.env`` and flags (``router.config``);
a bad value exits 2 naming the variable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

import asyncpg
import uvloop

from cli import accounts, data, demo, emulate, replay, serve, sync
from cli.command import Command
from cli.logs import setup_logging
from lookup.text import is_text
from router.config import ConfigError, load_config

__all__ = ["main"]

_LONG_RUNNING = ("serve", "demo", "emulate")


def _parser() -> argparse.ArgumentParser:
    # --data-dir and --database-url go before or after the sub-command alike
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS,
                        help="where the embedded database lives (ROUTER_DATA_DIR)")
    common.add_argument("--database-url", default=argparse.SUPPRESS,
                        help="PostgreSQL DSN (DATABASE_URL)")
    parser = argparse.ArgumentParser(prog="mango-router", description=__doc__,
                                     parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (serve, data, accounts, sync, replay, emulate, demo):
        group.add_parsers(sub, common)
    return parser


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every argument of the parser and of its sub-commands, theirs too."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)


def _check_text(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """An argument given as bytes that are not UTF-8 (Python hands them on as lone
    surrogates) cannot be a name, number, id or key: say which, before it reaches the
    database as a misleading error or a traceback. Paths are left alone: the OS takes
    such bytes back."""
    for action in _actions(parser):
        value = getattr(args, action.dest, None)
        if action.dest != "data_dir" and isinstance(value, str) and not is_text(value):
            parser.error(str(argparse.ArgumentError(action, "is not UTF-8 text")))


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_text(parser, args)
    overrides = {
        "ROUTER_DATA_DIR": getattr(args, "data_dir", None),
        "DATABASE_URL": getattr(args, "database_url", None),
        "ROUTER_HOST": getattr(args, "host", None) if args.command == "serve" else None,
        "ROUTER_PORT": getattr(args, "port", None) if args.command == "serve" else None,
    }
    try:
        config = load_config(overrides)
    except ConfigError as exc:
        print(f"mango-router: bad configuration: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(config.log_level or ("INFO" if args.command in _LONG_RUNNING else "WARNING"))
    if args.command == "serve":
        serve.serve(config)
        return
    run: Command = args.run
    try:
        code = uvloop.run(run(config, args))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        where = ("DATABASE_URL" if config.database_url
                 else f"the embedded database in {config.data_dir}")
        print(f"mango-router: cannot use {where}: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)

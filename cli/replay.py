"""``mango-router replay``: what other settings would have done with recent calls.

Try a setting on yesterday's calls before turning it on: the calls of the
window are planned again with the settings of FILE (a JSON object of the keys
to change, as ``PUT /api/settings`` takes) and compared with what was done.
Nothing is written: the connection is read-only.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from automation.replay import ReplayReport, replay
from cli.command import Subparsers
from cli.database import find_account, open_database, unknown_account
from lookup.accounts import checked_update
from lookup.settings import SettingsError
from router.config import Config

__all__ = ["add_parsers", "parse_window"]

_UNITS = {"m": 60, "h": 3600, "d": 86400}
# a century: any longer goes back before the epoch, and past datetime's range soon after
_LONGEST = timedelta(days=36500)


def add_parsers(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    rp = sub.add_parser("replay", parents=[common],
                        help="run recent calls through the rules with other settings; "
                             "print what would change (writes nothing)")
    rp.add_argument("--account", default="default")
    rp.add_argument("--since", required=True, type=parse_window,
                    help="how far back: 90m, 24h, 7d")
    rp.add_argument("--settings", required=True, type=Path,
                    help="a JSON object of the settings to try (the rest stay as they are)")
    rp.add_argument("--json", action="store_true", help="print the report as JSON")
    rp.set_defaults(run=replay_command)


def parse_window(text: str) -> timedelta:
    found = re.fullmatch(r"\s*0*(\d+)\s*([mhd])\s*", text)
    if found is None or found.group(1) == "0":
        raise argparse.ArgumentTypeError(f"{text!r} is not a window like 90m, 24h or 7d")
    number, unit = found.groups()
    # checked before timedelta, which overflows (and int, which refuses 4,300 digits)
    if len(number) > 9 or int(number) * _UNITS[unit] > _LONGEST.total_seconds():
        raise argparse.ArgumentTypeError(f"{text!r} is longer than {_LONGEST.days}d")
    return timedelta(seconds=int(number) * _UNITS[unit])


async def replay_command(config: Config, args: argparse.Namespace) -> int:
    try:
        update: Any = orjson.loads(args.settings.read_bytes())
    except OSError as exc:
        print(f"mango-router: cannot read {args.settings}: {exc.strerror}", file=sys.stderr)
        return 2
    except orjson.JSONDecodeError as exc:
        print(f"mango-router: {args.settings} is not JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(update, dict):
        print(f"mango-router: {args.settings} must hold a JSON object", file=sys.stderr)
        return 2
    async with open_database(config) as con:
        account = await find_account(con, args.account)
        if account is None:
            return unknown_account(args.account)
        try:
            other = await checked_update(con, account.id, account.settings, update)
        except SettingsError as exc:
            print(f"mango-router: {args.settings}: {exc}", file=sys.stderr)
            return 2
        since = datetime.now(UTC) - args.since
        async with con.transaction(readonly=True):
            report = await replay(con, account, other, since=since, now=time.time())
    if args.json:
        print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(_text(report, account.name, since))
    return 0


def _text(report: ReplayReport, account: str, since: datetime) -> str:
    lines = [f"replay of {account}: {report.calls} calls since {since:%Y-%m-%d %H:%M} UTC, "
             f"{len(report.changes)} would change"]
    for c in report.changes:
        when = _when(c.started_at)
        how = {"in": "incoming", "out": "outgoing"}.get(c.direction, c.direction)
        lines.append(f"\n  {c.entry_id}  {c.number}  {when} UTC  {how}, "
                     f"{'answered' if c.answered else 'missed'}")
        lines.append(f"      done:  {', '.join(c.done) or 'nothing'}")
        lines.append(f"      would: {', '.join(c.would) or 'nothing'}")
    kinds = sorted(set(report.done) | set(report.would))
    lines.append("\n  totals            done   would")
    for kind in kinds or ["(none)"]:
        lines.append(f"  {kind:<16}{report.done[kind]:>6}{report.would[kind]:>8}")
    lines.append(f"  numbers whose client would end with another responsible: "
                 f"{report.responsibles}")
    if report.not_done:
        lines.append("  of the actions done, not (yet) in the CRM: " + ", ".join(
            f"{n} {state}" for state, n in sorted(report.not_done.items())))
    if report.unreadable:
        lines.append(f"  journal entries no call could be made of (skipped): {report.unreadable}")
    return "\n".join(lines)


def _when(started_at: int | None) -> str:
    """A call's start as a date, or its number of seconds where no date can say it (the
    PBX's times are only checked to be whole numbers)."""
    if not started_at:
        return "-"
    try:
        return datetime.fromtimestamp(started_at, UTC).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return str(started_at)

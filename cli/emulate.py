"""``mango-router emulate pbx|megaplan``: the vendors' servers, for tests and demos."""

from __future__ import annotations

import argparse
import sys

from cli.command import Subparsers
from emulators.megaplan import run_megaplan_emulator
from emulators.pbx import PbxState, run_pbx_emulator
from emulators.pbx_users import matching_users
from router.config import Config

__all__ = ["add_parsers"]


def add_parsers(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    emulate = sub.add_parser("emulate", help="run an emulator (for tests and demos)",
                             parents=[common])
    emu = emulate.add_subparsers(dest="emulator", required=True)
    pbx = emu.add_parser("pbx", help="the MANGO OFFICE VPBX emulator", parents=[common])
    pbx.add_argument("--host", default="127.0.0.1")
    pbx.add_argument("--port", type=int, default=9002)
    pbx.add_argument("--seed", type=int, default=1)
    pbx.add_argument("--key", default="demo")
    pbx.add_argument("--salt", default="demo")
    pbx.add_argument("--clients", type=int, default=1000,
                     help="size of the matching Megaplan emulator's data set")
    pbx.set_defaults(run=emulate_pbx)

    megaplan = emu.add_parser("megaplan", help="the Megaplan API v3 emulator (demo/demo)",
                              parents=[common])
    megaplan.add_argument("--host", default="127.0.0.1")
    megaplan.add_argument("--port", type=int, default=9001)
    megaplan.add_argument("--clients", type=int, default=1000)
    megaplan.add_argument("--seed", type=int, default=1)
    megaplan.add_argument("--latency-ms", type=float, default=0.0,
                          help="added to every answer")
    megaplan.set_defaults(run=emulate_megaplan)


async def emulate_pbx(_config: Config, args: argparse.Namespace) -> int:
    users = matching_users(args.clients, args.seed)  # the Megaplan emulator's employees
    await run_pbx_emulator(args.host, args.port,
                           PbxState(api_key=args.key, salt=args.salt, users=users))
    return 0


async def emulate_megaplan(_config: Config, args: argparse.Namespace) -> int:
    print(f"Megaplan emulator: http://{args.host}:{args.port} (user demo, password demo),"
          f" {args.clients} clients, seed {args.seed}", file=sys.stderr, flush=True)
    await run_megaplan_emulator(args.host, args.port, clients=args.clients, seed=args.seed,
                                latency_ms=args.latency_ms)
    return 0

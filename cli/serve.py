"""``mango-router serve``: the HTTP server, the service's main job."""

from __future__ import annotations

import argparse
import asyncio

import uvloop
from aiohttp import web

from cli.command import Subparsers
from router.app import create_app
from router.config import Config
from router.gc_tuning import tune_gc

__all__ = ["add_parsers", "serve"]


def add_parsers(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", help="run the HTTP server", parents=[common])
    serve.add_argument("--host", help="listen address (ROUTER_HOST)")
    serve.add_argument("--port", help="listen port (ROUTER_PORT)")


def serve(config: Config) -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = create_app(config)
    app.on_startup.append(tune_gc)  # after the cleanup contexts: the index is built
    # A deep accept queue: at the default 128 a burst of new PBX connections overflowed
    # it, and each dropped SYN cost its request a 1 s retransmit (measured in bench/).
    web.run_app(app, host=config.host, port=config.port, access_log=None, print=None,
                shutdown_timeout=10, backlog=1024)

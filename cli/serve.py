"""``mango-router serve``: the HTTP server, the service's main job."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import sys

import uvloop
from aiohttp import web

from cli.command import Subparsers
from router.app import create_app
from router.config import Config
from router.gc_tuning import tune_gc
from router.keys import ACCOUNTS
from router.stopping import exit_after

logger = logging.getLogger(__name__)

__all__ = ["STOP_LIMIT_S", "add_parsers", "serve"]

STOP_LIMIT_S = 60.0  # the most a stop may take (router.stopping.exit_after)


def add_parsers(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", help="run the HTTP server", parents=[common])
    serve.add_argument("--host", help="listen address (ROUTER_HOST)")
    serve.add_argument("--port", type=_port, help="listen port (ROUTER_PORT)")


async def _bounded_stop(_app: web.Application) -> None:
    exit_after(STOP_LIMIT_S)


def _port(text: str) -> str:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return text


def serve(config: Config) -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = create_app(config)
    app.on_startup.append(tune_gc)  # after the cleanup contexts: the index is built
    app.on_shutdown.append(_bounded_stop)

    def listening(_banner: str) -> None:  # run_app says so once the socket is bound
        names = sorted(a.name for a in app[ACCOUNTS].all())
        logger.info("listening on http://%s:%d (pages: http://%s:%d/, PBX integration URL "
                    "http://%s:%d/mango); accounts: %s", config.host, config.port,
                    config.host, config.port, config.host, config.port,
                    ", ".join(names) or "none yet",
                    extra={"host": config.host, "port": config.port, "accounts": names})

    try:
        # A deep accept queue: at the default 128 a burst of new PBX connections overflowed
        # it, and each dropped SYN cost its request a 1 s retransmit (measured in bench/).
        web.run_app(app, host=config.host, port=config.port, access_log=None,
                    print=listening, shutdown_timeout=10, backlog=1024)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        print(f"mango-router: cannot listen on {config.host}:{config.port}: "
              f"{exc.strerror or exc} (ROUTER_HOST / ROUTER_PORT, --host / --port)",
              file=sys.stderr)
        sys.exit(2)

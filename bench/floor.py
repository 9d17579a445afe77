"""The floor: a bare aiohttp relay with the service's wire behaviour and none of its work.

It checks each notification's signature, answers at once, and for a routing trigger
sends a fixed ``commands/route`` to the PBX: no lookup, no journal, no database.
It is built from the product's own stack — aiohttp's server, the form decoding of
``mango.form``, the VPBX client of ``mango.client``, the serving
process's garbage-collector settings — so whatever it shows is the limit of that
stack (and loopback, and the emulator) that the product is measured against.

Run: ``python -m bench.floor --port P --pbx-url URL --api-key K --salt S``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from bench.procs import new_event_loop
from lookup.accounts import Account
from lookup.settings import Settings
from mango.client import PbxClient, pbx_session
from mango.form import parse_form
from mango.signing import verify
from router.gc_tuning import tune_gc

__all__ = ["FIXED_EXTENSION", "FloorConfig", "create_floor_app", "main"]

logger = logging.getLogger(__name__)

FIXED_EXTENSION = "100"


@dataclass(frozen=True, slots=True, kw_only=True)
class FloorConfig:
    api_key: str
    salt: str
    pbx_url: str  # e.g. http://127.0.0.1:9000/vpbx/


@dataclass(slots=True, kw_only=True)
class _Relay:
    config: FloorConfig
    account: Account  # what the product's VPBX client signs and sends with
    client: PbxClient | None = None  # opened in _client_ctx
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    counter: itertools.count[int] = field(default_factory=itertools.count)


RELAY = web.AppKey("floor_relay", _Relay)


def create_floor_app(config: FloorConfig) -> web.Application:
    app = web.Application()
    account = Account(id=0, name="floor", mango_api_key=config.api_key,
                      mango_api_salt=config.salt, mango_api_url=config.pbx_url,
                      megaplan_url=None, megaplan_username=None, megaplan_password=None,
                      token_hash=None, settings=Settings())
    app[RELAY] = _Relay(config=config, account=account)
    app.cleanup_ctx.append(_client_ctx)
    app.router.add_post("/mango/{kind:.+}", _notification)
    app.router.add_get("/healthz", _ok)
    app.router.add_get("/readyz", _ok)
    return app


async def _client_ctx(app: web.Application) -> AsyncIterator[None]:
    relay = app[RELAY]
    http = pbx_session()  # the product's own client session (router.app.http_ctx)
    relay.client = PbxClient(http)
    yield
    for task in list(relay.tasks):
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    await http.close()


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _notification(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    try:
        form = parse_form(await request.read())
    except ValueError:
        return web.Response(status=400, text="bad form")
    key, sign_, raw = form.get("vpbx_api_key"), form.get("sign"), form.get("json")
    if not (isinstance(key, str) and isinstance(sign_, str) and isinstance(raw, str)):
        return web.Response(status=400, text="missing field")
    cfg = relay.config
    if key != cfg.api_key or not verify(key, raw, cfg.salt, sign_):
        return web.Response(status=403, text="forbidden")
    if request.match_info["kind"] == "events/call":
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.Response(status=400, text="bad json")
        if isinstance(event, dict) and _is_trigger(event):
            task = asyncio.create_task(_route(relay, str(event.get("call_id", ""))))
            relay.tasks.add(task)
            task.add_done_callback(relay.tasks.discard)
    return web.Response(text="ok")


def _is_trigger(event: dict[str, Any]) -> bool:
    frm = event.get("from")
    return (
        event.get("call_state") == "Appeared"
        and event.get("location") == "ivr"
        and isinstance(frm, dict)
        and bool(frm.get("number"))
        and not frm.get("extension")
    )


async def _route(relay: _Relay, call_id: str) -> None:
    assert relay.client is not None
    payload = {"command_id": f"floor-{next(relay.counter)}", "call_id": call_id,
               "to_number": FIXED_EXTENSION}
    result = await relay.client.command(relay.account, "commands/route", payload, within=5)
    if not result.accepted:  # PbxClient never raises: a relay must not die either
        logger.warning("route failed: %s", result.error or result.http_status)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.floor")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pbx-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--salt", required=True)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = FloorConfig(api_key=a.api_key, salt=a.salt, pbx_url=a.pbx_url)
    app = create_floor_app(cfg)
    app.on_startup.append(tune_gc)  # as mango-router serve does
    web.run_app(app, host=a.host, port=a.port, access_log=None, print=None,
                loop=new_event_loop(), backlog=1024)


if __name__ == "__main__":
    main()

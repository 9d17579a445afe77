"""The floor: a bare aiohttp relay with the service's wire behaviour and none of its work.

It checks each notification's signature, answers at once, and for a routing trigger
sends a fixed ``commands/route`` to the PBX: no lookup, no journal, no database.
Whatever latency it shows is the limit of the stack (aiohttp in and out, loopback,
the emulator) that the product is measured against.

Run: ``python -m bench.floor --port P --pbx-url URL --api-key K --salt S``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from bench.procs import new_event_loop
from router.signing import sign, verify

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
    session: ClientSession | None = None
    tasks: set[asyncio.Task[None]] | None = None
    counter: itertools.count[int] | None = None


RELAY = web.AppKey("floor_relay", _Relay)


def create_floor_app(config: FloorConfig) -> web.Application:
    app = web.Application()
    app[RELAY] = _Relay(config=config, tasks=set(), counter=itertools.count())
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_post("/mango/{kind:.+}", _notification)
    app.router.add_get("/healthz", _ok)
    app.router.add_get("/readyz", _ok)
    return app


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    relay = app[RELAY]
    relay.session = ClientSession(
        connector=TCPConnector(limit=0), timeout=ClientTimeout(total=5)
    )
    yield
    for task in list(relay.tasks or ()):
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    await relay.session.close()


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _notification(request: web.Request) -> web.Response:
    relay = request.app[RELAY]
    form = await request.post()
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
            assert relay.tasks is not None
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
    cfg = relay.config
    assert relay.session is not None
    assert relay.counter is not None
    raw = orjson.dumps(
        {"command_id": f"floor-{next(relay.counter)}", "call_id": call_id,
         "to_number": FIXED_EXTENSION}
    ).decode()
    form = {"vpbx_api_key": cfg.api_key, "sign": sign(cfg.api_key, raw, cfg.salt), "json": raw}
    try:
        async with relay.session.post(f"{cfg.pbx_url}commands/route", data=form) as resp:
            await resp.read()
    except Exception:  # a relay must not die because the PBX is away
        logger.warning("route failed", exc_info=True)


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
    web.run_app(
        create_floor_app(cfg), host=a.host, port=a.port, access_log=None, print=None,
        loop=new_event_loop(), backlog=1024,
    )


if __name__ == "__main__":
    main()

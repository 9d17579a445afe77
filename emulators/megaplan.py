"""A Megaplan API v3 emulator: a real aiohttp server over a mutable data set.

Faithful to the documented v3 formats (envelope, JSON query parameter,
pageAfter paging, bearer tokens) so a public v3 client works against it, plus
fault injection for resilience tests and the benchmark. ``callRoute`` is the
per-call lookup used as the benchmark baseline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from emulators import megaplan_reads as reads
from emulators import megaplan_writes as writes
from emulators.megaplan_auth import AUTH_PATH, access_token, bearer_middleware
from emulators.megaplan_dataset import export_jsonl, generate, load_jsonl
from emulators.megaplan_faults import Faults, faults_middleware
from emulators.megaplan_http import STATE_KEY, api_errors_middleware
from emulators.megaplan_store import LINE_FIELD_NAME, MegaplanState

__all__ = [
    "LINE_FIELD_NAME",
    "STATE_KEY",
    "Faults",
    "MegaplanState",
    "create_megaplan_app",
    "export_jsonl",
    "generate",
    "load_jsonl",
    "run_megaplan_emulator",
    "serve_megaplan",
]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
V3 = "/api/v3"


def _is_write(request: web.Request) -> bool:
    """What the write faults hit: a change to the CRM (a token request is not one)."""
    return request.method not in ("GET", "HEAD", "OPTIONS") and request.path != AUTH_PATH


@web.middleware
async def _count_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[STATE_KEY].request_count += 1
    return await handler(request)


def create_megaplan_app(state: MegaplanState) -> web.Application:
    app = web.Application(
        middlewares=[
            _count_middleware,
            api_errors_middleware,
            faults_middleware(lambda request: request.app[STATE_KEY].faults, _is_write),
            bearer_middleware,
        ]
    )
    app[STATE_KEY] = state
    r = app.router
    r.add_post(AUTH_PATH, access_token)
    r.add_get(f"{V3}/employee", reads.employee_list)
    r.add_get(f"{V3}/contractor", reads.contractor_list)
    r.add_get(f"{V3}/contractor/{{id:\\d+}}", reads.contractor_card)
    r.add_get(f"{V3}/contractor/{{id:\\d+}}/deals", reads.contractor_deals)
    r.add_post(f"{V3}/contractor/{{id:\\d+}}/comments", writes.add_comment)
    r.add_get(f"{V3}/contractorHuman", reads.human_list)
    r.add_get(f"{V3}/contractorHuman/extraFields", reads.extra_fields)
    r.add_get(f"{V3}/contractorHuman/{{id:\\d+}}", reads.contractor_card)
    r.add_post(f"{V3}/contractorHuman/{{id:\\d+}}", writes.update_human)
    r.add_get(f"{V3}/program", reads.program_list)
    r.add_get(f"{V3}/program/{{id:\\d+}}/entryPoints", reads.program_entry_points)
    r.add_get(f"{V3}/callRoute", reads.call_route)
    for suffix in ("", "/"):  # v3 examples post to both ".../deal" and ".../deal/"
        r.add_post(f"{V3}/contractorHuman{suffix}", writes.create_human)
        r.add_post(f"{V3}/deal{suffix}", writes.create_deal)
        r.add_post(f"{V3}/callInfo/history{suffix}", writes.call_history)
    return app


@asynccontextmanager
async def serve_megaplan(
    state: MegaplanState, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``state`` on a real socket; yields the base URL (port 0 picks a free one)."""
    runner = web.AppRunner(create_megaplan_app(state), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()


async def run_megaplan_emulator(
    host: str = "127.0.0.1",
    port: int = 9001,
    clients: int = 1000,
    seed: int = 1,
    latency_ms: float = 0.0,
    data_file: str | Path | None = None,
) -> None:
    """Serve a generated (or loaded) CRM until cancelled."""
    state = load_jsonl(data_file) if data_file is not None else generate(clients, seed)
    state.faults.latency_ms = latency_ms
    async with serve_megaplan(state, host, port) as url:
        logger.info(
            "Megaplan emulator on %s: %d employees, %d clients (user %s)",
            url,
            len(state.employees),
            len(state.clients),
            state.username,
        )
        await asyncio.Event().wait()

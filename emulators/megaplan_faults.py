"""Fault injection for the Megaplan emulator: slow, failing, throttling, dropping."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["Faults", "faults_middleware"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True, kw_only=True)
class Faults:
    """Mutable on purpose: tests change it while the server runs.

    Counts are used up first (one per request), then rates apply.
    """

    latency_ms: float = 0.0
    error_count: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    throttle_count: int = 0
    retry_after_s: float = 1.0
    drop_count: int = 0
    drop_rate: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)

    def take_drop(self) -> bool:
        if self.drop_count > 0:
            self.drop_count -= 1
            return True
        return self.drop_rate > 0 and self.rng.random() < self.drop_rate

    def take_throttle(self) -> bool:
        if self.throttle_count > 0:
            self.throttle_count -= 1
            return True
        return False

    def take_error(self) -> bool:
        if self.error_count > 0:
            self.error_count -= 1
            return True
        return self.error_rate > 0 and self.rng.random() < self.error_rate


def _envelope_error(status: int, message: str) -> bytes:
    return b'{"meta":{"status":%d,"errors":[{"field":null,"message":"%s"}]},"data":null}' % (
        status,
        message.encode(),
    )


def faults_middleware(get_faults: Callable[[web.Request], Faults]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        faults = get_faults(request)
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.take_drop():
            logger.debug("fault: dropping %s %s", request.method, request.path)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never sent: the socket is gone
        if faults.take_throttle():
            return web.Response(
                status=429,
                body=_envelope_error(429, "Too many requests"),
                content_type="application/json",
                headers={"Retry-After": f"{faults.retry_after_s:g}"},
            )
        if faults.take_error():
            return web.Response(
                status=faults.error_status,
                body=_envelope_error(faults.error_status, "Emulated server error"),
                content_type="application/json",
            )
        return await handler(request)

    return middleware

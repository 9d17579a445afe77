"""Fault injection for the Megaplan emulator: slow, failing, throttling, dropping.

The write faults tell "not applied" (an error before the handler) from "applied
but unanswered" (the handler ran, then the connection closed), so tests can
prove a client retries only what is safe to send again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["Faults", "faults_middleware"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_DOWN_PAGE = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"


@dataclass(slots=True, kw_only=True)
class Faults:
    """Mutable on purpose: tests change it while the server runs.

    Counts are used up first (one per request), then rates apply. In order:
    ``down_until`` answers every request 503 (token requests too);
    ``rate_cap_per_s`` answers 429 past that many requests in a rolling second;
    ``latency_ms`` delays every request, ``stall_s`` the next ``stall_count``
    (they are handled afterwards, even if the client gave up); ``drop_*``
    closes the connection unanswered and ``throttle_*`` answers 429, both before
    applying; ``error_*`` answers ``error_status`` to any request and
    ``write_error_*`` 500 to writes, before applying; ``lost_answer_*`` applies
    a write, then closes the connection without its answer; ``garbled_answer_count``
    applies a write, then answers 200 with ``garbled_answer`` (by default an object
    with no id); ``error_when`` answers ``error_status`` to every request it matches
    (a page the CRM cannot serve, however often it is asked). A write is a
    POST/PUT/PATCH/DELETE other than the token request.
    """

    latency_ms: float = 0.0
    error_count: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    throttle_count: int = 0
    throttle_rate: float = 0.0
    retry_after_s: float = 1.0
    rate_cap_per_s: int = 0  # 0: no cap
    drop_count: int = 0
    drop_rate: float = 0.0
    write_error_count: int = 0
    write_error_rate: float = 0.0
    lost_answer_count: int = 0
    lost_answer_rate: float = 0.0
    garbled_answer_count: int = 0
    garbled_answer: bytes = b'{"meta":{"status":200,"errors":[]},"data":{"contentType":"Deal"}}'
    stall_count: int = 0
    stall_s: float = 0.0
    down_until: float = 0.0  # time.monotonic() until which the CRM is down
    error_when: Callable[[web.Request], bool] | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False)
    _admitted: deque[float] = field(default_factory=deque, repr=False)

    def _take(self, count_name: str, rate: float) -> bool:
        count: int = getattr(self, count_name)
        if count > 0:
            setattr(self, count_name, count - 1)
            return True
        return rate > 0 and self.rng.random() < rate

    def take_drop(self) -> bool:
        return self._take("drop_count", self.drop_rate)

    def take_throttle(self) -> bool:
        return self._take("throttle_count", self.throttle_rate)

    def take_error(self) -> bool:
        return self._take("error_count", self.error_rate)

    def take_write_error(self) -> bool:
        return self._take("write_error_count", self.write_error_rate)

    def take_lost_answer(self) -> bool:
        return self._take("lost_answer_count", self.lost_answer_rate)

    def take_garbled_answer(self) -> bool:
        return self._take("garbled_answer_count", 0.0)

    def take_stall(self) -> bool:
        return self._take("stall_count", 0.0)

    def down_for(self, seconds: float) -> None:
        """The CRM is down (every request answered 503) for ``seconds`` from now."""
        self.down_until = time.monotonic() + seconds

    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def rate_capped(self, now: float | None = None) -> float | None:
        """Seconds until a slot frees when the cap is reached; None admits (and counts) one."""
        if self.rate_cap_per_s <= 0:
            return None
        now = time.monotonic() if now is None else now
        while self._admitted and self._admitted[0] <= now - 1.0:
            self._admitted.popleft()
        if len(self._admitted) >= self.rate_cap_per_s:
            return self._admitted[0] + 1.0 - now
        self._admitted.append(now)
        return None


def _envelope_error(status: int, message: str) -> bytes:
    return b'{"meta":{"status":%d,"errors":[{"field":null,"message":"%s"}]},"data":null}' % (
        status,
        message.encode(),
    )


def _throttled(retry_after_s: float) -> web.Response:
    return web.Response(
        status=429,
        body=_envelope_error(429, "Too many requests"),
        content_type="application/json",
        headers={"Retry-After": f"{retry_after_s:g}"},
    )


def _error(status: int) -> web.Response:
    return web.Response(
        status=status,
        body=_envelope_error(status, "Emulated server error"),
        content_type="application/json",
    )


def _close(request: web.Request, why: str) -> web.Response:
    logger.debug("fault: %s %s %s", why, request.method, request.path)
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never sent: the socket is gone


def faults_middleware(
    get_faults: Callable[[web.Request], Faults],
    is_write: Callable[[web.Request], bool],
) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        faults = get_faults(request)
        if faults.is_down():
            return web.Response(status=503, body=_DOWN_PAGE, content_type="text/html")
        wait = faults.rate_capped()
        if wait is not None:  # whole seconds, as HTTP has it: a retry then finds a free slot
            return _throttled(max(1, math.ceil(wait)))
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.take_stall():
            await request.read()  # in hand (and cached), so it is applied after the client left
            await asyncio.sleep(faults.stall_s)
        if faults.take_drop():
            return _close(request, "dropping")
        if faults.take_throttle():
            return _throttled(faults.retry_after_s)
        if faults.take_error() or (faults.error_when is not None and faults.error_when(request)):
            return _error(faults.error_status)
        write = is_write(request)
        if write and faults.take_write_error():
            return _error(500)
        response = await handler(request)
        if write and response.status < 300 and faults.take_lost_answer():
            return _close(request, "applied, then losing the answer to")
        if write and response.status < 300 and faults.take_garbled_answer():
            return web.Response(body=faults.garbled_answer, content_type="application/json")
        return response

    return middleware

"""One listening connection for the state that every replica keeps in memory and
the database announces with NOTIFY (busy legs, last contacts).

Handlers run in the connection's callback, so they must be cheap (a dict
update). Notifications may be missed while the connection is down, so after
every (re)connect each subscriber's resync runs, already listening: nothing
committed after a resync starts is missed. Like the index keeper's, a quiet
connection is pinged, so one dropped without a reset is noticed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

import asyncpg

from lookup.db import cancel_wins

logger = logging.getLogger(__name__)

__all__ = ["Listener"]

_PING_SECONDS = 5.0
_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)


class Listener:
    """Subscribe channels and resyncs, then run ``run()`` as a task."""

    __slots__ = ("_channels", "_dsn", "_name", "_resyncs", "ready")

    def __init__(self, dsn: str, name: str = "mango-router listener") -> None:
        self._dsn = dsn
        self._name = name  # its application_name, to find it in pg_stat_activity
        self._channels: dict[str, Callable[[str], None]] = {}
        self._resyncs: list[Callable[[], Awaitable[None]]] = []
        self.ready = asyncio.Event()  # listening, and every resync done once

    def subscribe(self, channel: str, handler: Callable[[str], None]) -> None:
        self._channels[channel] = handler

    def on_connect(self, resync: Callable[[], Awaitable[None]]) -> None:
        self._resyncs.append(resync)

    async def run(self) -> None:
        attempt = 0
        while True:
            lost = asyncio.Event()
            try:
                con = await asyncpg.connect(self._dsn,
                                            server_settings={"application_name": self._name})
            except (OSError, asyncpg.PostgresError) as exc:
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                logger.warning("listener cannot connect; retrying",
                               extra={"error": str(exc), "retry_s": delay})
                attempt += 1
                await asyncio.sleep(delay)
                continue
            try:
                con.add_termination_listener(lambda _c, closed=lost: closed.set())
                for channel, handler in self._channels.items():
                    await con.add_listener(channel, _callback(handler))
                for resync in self._resyncs:
                    await resync()
                attempt = 0
                self.ready.set()
                await _watch(con, lost)
            except Exception as exc:  # outlive any failure: resync after reconnecting
                cancel_wins(exc)
                logger.warning("listener lost; will resync after reconnecting",
                               extra={"error": repr(exc)}, exc_info=True)
            finally:
                with suppress(Exception):
                    await con.close(timeout=1)
            await asyncio.sleep(_RETRY_SECONDS[0])


def _callback(handler: Callable[[str], None]) -> Callable[[object, int, str, object], None]:
    def on_notify(_con: object, _pid: int, _channel: str, payload: object) -> None:
        handler(str(payload))

    return on_notify


async def _watch(con: asyncpg.Connection, lost: asyncio.Event) -> None:
    """Until the connection is lost; a quiet one is pinged."""
    while True:
        with suppress(TimeoutError):
            async with asyncio.timeout(_PING_SECONDS):
                await lost.wait()
        if lost.is_set():
            raise asyncpg.InterfaceError("listening connection closed")
        await con.execute("SELECT 1", timeout=_PING_SECONDS)

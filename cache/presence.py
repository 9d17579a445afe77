"""Who is on a call now, per account, in memory: what ``skip_busy_responsible``
routes around.

An employee is busy while one of their legs is Connected (or on hold) and not
yet Disconnected, whichever replica received it. The journal's trigger keeps
``busy_legs`` and NOTIFYs each change on ``mango_busy`` (``lookup.presence``);
every replica applies the notifications here, and reads the live legs whole
at start and after its listening connection was lost. The hot path reads one
dict per account (extension -> live legs) and nothing else. A leg whose
Disconnected never comes stops counting ``BUSY_BOUND_S`` after it began.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import asyncpg
import orjson

from lookup.presence import BUSY_BOUND_S, live_legs

logger = logging.getLogger(__name__)

__all__ = ["Presence"]

_NOBODY: Mapping[str, int] = MappingProxyType({})
_EXPIRE_EVERY_S = 60.0

_Leg = tuple[int, str, str]  # account, call_id, extension


class Presence:
    """Every account's busy extensions; one object for the life of the app."""

    __slots__ = ("_busy", "_clock", "_legs", "_replay")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._legs: dict[_Leg, float] = {}  # live leg -> busy since (clock)
        self._busy: dict[int, dict[str, int]] = {}  # account -> extension -> live legs
        self._replay: list[tuple[_Leg, bool]] | None = None  # changes heard while resyncing

    # -- the hot path -------------------------------------------------------------------

    def busy(self, account_id: int) -> Mapping[str, int]:
        """The account's extensions on a call now (read it, do not keep it)."""
        return self._busy.get(account_id, _NOBODY)

    # -- upkeep -------------------------------------------------------------------------

    def on_notify(self, payload: str) -> None:
        """A ``mango_busy`` notification: {"a": account, "c": call, "x": extension, "b": busy}."""
        try:
            note: Any = orjson.loads(payload)
            leg = (int(note["a"]), str(note["c"]), str(note["x"]))
            busy = note["b"] is True
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            logger.warning("unreadable busy notification", extra={"payload": payload[:200]})
            return
        if self._replay is not None:
            self._replay.append((leg, busy))
        self._set(leg, busy, self._clock())

    async def resync(self, pool: asyncpg.Pool) -> None:
        """Replace everything with the database's live legs, then replay what was heard
        meanwhile (notifications come in commit order, so the replay ends right)."""
        self._replay = []
        try:
            legs = await live_legs(pool)
        except BaseException:
            self._replay = None
            raise
        heard, self._replay = self._replay, None
        now = self._clock()
        self._legs, self._busy = {}, {}
        for live in legs:
            self._set((live.account_id, live.call_id, live.extension), True, now - live.age_s)
        for leg, busy in heard:
            self._set(leg, busy, now)

    def expire(self) -> int:
        """Forget legs busy for longer than the bound; how many were forgotten."""
        oldest = self._clock() - BUSY_BOUND_S
        stale = [leg for leg, since in self._legs.items() if since < oldest]
        for leg in stale:
            self._set(leg, False, 0.0)
        return len(stale)

    async def run_expiry(self) -> None:
        while True:
            await asyncio.sleep(_EXPIRE_EVERY_S)
            if forgotten := self.expire():
                logger.info("busy legs without a Disconnected forgotten",
                            extra={"legs": forgotten})

    def __len__(self) -> int:
        """Live legs, every account."""
        return len(self._legs)

    def _set(self, leg: _Leg, busy: bool, since: float) -> None:
        account, _call, extension = leg
        if busy:
            if leg in self._legs:
                return
            self._legs[leg] = since
            extensions = self._busy.get(account)
            if extensions is None:
                extensions = self._busy[account] = {}
            extensions[extension] = extensions.get(extension, 0) + 1
            return
        if self._legs.pop(leg, None) is None:
            return
        extensions = self._busy[account]
        left = extensions[extension] - 1
        if left:
            extensions[extension] = left
        else:
            del extensions[extension]
            if not extensions:
                del self._busy[account]

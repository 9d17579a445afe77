"""The calls list's rows, folded from the journal in the background, off the 200s.

The journal's statement only marks its events as not folded yet (migration 0013):
folding them there held every 200 of the batch for it, and under load the PBX
opened new connections meanwhile. Here one task folds what the journal wrote half
a second after it wrote it: the events of that half second fold together (one new
version of a call's row per fold, not one per event), on a connection of its own whose
backend runs at a lower CPU priority (``lookup.priority``), so that routing's
statements get the cores first, and whose commits do not wait for the disk: a
fold and the deletion of its marks commit together, so a crash loses both and the
marks are folded again. Every replica's folder takes any marks, each once, so
what a stopped replica marked is folded too (on an idle turn, at the latest). The
lists fold what is left before they read: nobody waits for this task.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import asyncpg

from lookup.calls import fold_all

logger = logging.getLogger(__name__)

__all__ = ["CallsFolder"]

# After the journal wrote: its statements of this long fold together. Two seconds made
# one fold of 24,000 events every 2 s at 3,000 calls/s, a burst of the database's CPU
# that a 2-core host felt in routing: index mode's 8 s steps at 3,000/s held 8 times in
# 9 at half a second (median p99 28 ms), against 4 in 7 at two (43 ms), interleaved.
_SPACING = 0.5
_IDLE = 5.0  # with nothing written here: other replicas' leftovers
_RETRY = 1.0


class CallsFolder:
    """``poke()`` after each journal write; ``run()`` folds until cancelled."""

    __slots__ = ("_pool", "_wake")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._wake = asyncio.Event()

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _IDLE)
            await asyncio.sleep(_SPACING)
            self._wake.clear()
            try:
                await self.fold()
            except asyncio.CancelledError:
                raise
            except Exception:  # the marks stay: folded on a later turn
                logger.warning("calls not folded; retrying", exc_info=True)
                await asyncio.sleep(_RETRY)

    async def fold(self) -> None:
        """Everything marked that no other session is folding now."""
        await fold_all(self._pool)

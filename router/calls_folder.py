"""The calls list's rows, folded from the journal in the background, off the 200s.

The journal's statement only marks its events as not folded yet (migration 0013):
folding them there held every 200 of the batch for it, and under load the PBX
opened new connections meanwhile. Here one task folds what the journal wrote two
seconds after it wrote it: most calls' events of those seconds fold together (one
new version of a call's row, not one per event), on a connection of its own whose
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

_SPACING = 2.0  # after the journal wrote: its statements of this long fold together
# Half a second was tried (1 December): the index mode's 3,000/s steps held more often,
# but the auto mode's paired rounds at 1,000/s had one of 4-6 ms (2-3 ms at two seconds).
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
                async with asyncio.timeout(_IDLE):
                    await self._wake.wait()
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

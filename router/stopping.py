"""Background tasks stopped at shutdown in bounded time.

A task is cancelled, then waited for. One that has not ended after ``within``
seconds is left behind, with an error in the log, and the shutdown goes on: the
pools closed after it terminate its connection. A statement on a database that
went silent (a crashed host, a partition) waits for the server's answer to its
cancel however long that takes, and an awaited clean-up would wait with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["finish_within", "stop_task"]

STOP_WAIT = 5.0  # seconds a cancelled task is given to end


async def stop_task(task: asyncio.Task[Any], *, within: float = STOP_WAIT) -> None:
    """Cancel ``task`` and wait up to ``within`` seconds for it to end; log its failure."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        logger.error("a task did not stop in time; shutting down without it",
                     extra={"task": task.get_name(), "within_s": within})
    elif not task.cancelled() and (exc := task.exception()) is not None:
        logger.error("a task failed as it stopped", exc_info=exc,
                     extra={"task": task.get_name()})


async def finish_within(work: Coroutine[Any, Any, Any], *, within: float, what: str) -> bool:
    """Run ``work`` for up to ``within`` seconds (a last flush on the way out); False
    when it failed or did not finish (then it is stopped, or left behind as above)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        logger.warning("not finished at shutdown", extra={"what": what, "within_s": within})
        await stop_task(task, within=1.0)
        return False
    exc = None if task.cancelled() else task.exception()
    if task.cancelled() or exc is not None:
        logger.warning("failed at shutdown", exc_info=exc, extra={"what": what})
        return False
    return True

"""Background tasks stopped at shutdown in bounded time.

Tasks are cancelled together, then waited for together. One that has not ended
after ``within`` seconds is left behind, with an error in the log, and the
shutdown goes on (the pools closed after it terminate its connections): a
statement on a database that went silent (a crashed host, a partition) waits
for the server's answer to its cancel however long that takes, and a clean-up
that awaited it would wait as long. A task that failed has its error raised
once all are stopped, as awaiting it did (aiohttp reports a clean-up's error
and goes on with the others).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["STOP_WAIT", "exit_after", "finish_within", "stop_tasks"]

STOP_WAIT = 5.0  # seconds cancelled tasks are given to end


async def stop_tasks(*tasks: asyncio.Task[Any], within: float = STOP_WAIT) -> None:
    """Cancel ``tasks`` and wait up to ``within`` seconds for them to end; raise the
    first error one of them ended with."""
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    done, pending = await asyncio.wait(tasks, timeout=within)
    for task in pending:
        logger.error("a task did not stop in time; shutting down without it",
                     extra={"task": task.get_name(), "within_s": within})
        task.add_done_callback(_reap)
    failures = [exc for task in tasks if task in done and not task.cancelled()
                and (exc := task.exception()) is not None]
    if failures:
        raise failures[0]


async def finish_within(work: Coroutine[Any, Any, Any], *, within: float, what: str) -> bool:
    """Run ``work`` for up to ``within`` seconds (a last flush on the way out); False
    when it failed or did not finish (then it is stopped, or left behind as above)."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=within)
    except BaseException:  # the clean-up itself cancelled: the work goes with it
        task.cancel()
        raise
    if not done:
        logger.warning("not finished at shutdown", extra={"what": what, "within_s": within})
        try:
            await stop_tasks(task, within=1.0)
        except Exception:
            logger.warning("failed at shutdown", exc_info=True, extra={"what": what})
        return False
    exc = None if task.cancelled() else task.exception()
    if task.cancelled() or exc is not None:
        logger.warning("failed at shutdown", exc_info=exc, extra={"what": what})
        return False
    return True


def _reap(task: asyncio.Task[Any]) -> None:
    """A task left behind that ends later: its error is logged, not left unretrieved."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.warning("a task left behind at shutdown ended with an error", exc_info=exc,
                       extra={"task": task.get_name()})


def exit_after(seconds: float) -> threading.Timer:
    """End the process ``seconds`` from now, whatever it is doing: the last resort of a
    stop (every part of it is bounded, but they add up, and an await left unbounded by
    mistake would otherwise keep the process for good)."""
    timer = threading.Timer(seconds, _exit_now, args=(seconds,))
    timer.name = "stop-limit"
    timer.daemon = True  # a stop that finishes in time exits without waiting for it
    timer.start()
    return timer


def _exit_now(seconds: float) -> None:
    logger.error("stopping took more than %g s; exiting without finishing it", seconds)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)

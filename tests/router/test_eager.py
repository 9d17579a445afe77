"""start_now: a coroutine's first step runs in the caller's turn, as the new task's own."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from router.eager import start_now

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def test_the_first_step_runs_before_start_now_returns() -> None:
    steps: list[str] = []
    gate = asyncio.get_running_loop().create_future()

    async def work() -> str:
        steps.append("first")
        await gate
        steps.append("second")
        return "done"

    task = start_now(work())
    assert steps == ["first"]  # no turn of the loop in between
    gate.set_result(None)
    assert await task == "done"
    assert steps == ["first", "second"]


async def test_during_the_first_step_the_current_task_is_the_new_one() -> None:
    caller = asyncio.current_task()
    seen: list[asyncio.Task[object] | None] = []

    async def work() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    task = start_now(work())
    assert asyncio.current_task() is caller  # given back
    await task
    assert seen == [task, task]


async def test_a_timeout_entered_in_the_first_step_cancels_the_new_task_not_the_caller() -> None:
    async def slow() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        except TimeoutError:
            return "timed out"
        return "not timed out"

    task = start_now(slow())
    await asyncio.sleep(0.05)  # the caller is not cancelled meanwhile
    assert await task == "timed out"


async def test_a_coroutine_done_in_its_first_step_gives_its_result() -> None:
    async def quick() -> int:
        return 7

    task = start_now(quick())
    assert await task == 7


async def test_errors_of_either_step_are_the_tasks() -> None:
    async def fails_at_once() -> None:
        raise ValueError("first")

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    with pytest.raises(ValueError, match="first"):
        await start_now(fails_at_once())
    with pytest.raises(KeyError, match="later"):
        await start_now(fails_later())


async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits() -> None:
    cleaned: list[bool] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(True)

    task = start_now(waits())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]


async def test_the_first_step_runs_in_the_tasks_context_not_the_callers() -> None:
    async def sets() -> str:
        VAR.set("task")
        await asyncio.sleep(0)
        return VAR.get()

    task = start_now(sets())
    assert VAR.get() == "unset"
    assert await task == "task"

"""Group commit: waits that time out, and rows that are still written afterwards."""

from __future__ import annotations

import asyncio

import pytest

from router.batcher import BatchWriter


async def test_a_late_write_fails_the_wait_but_the_item_is_still_written() -> None:
    written: list[int] = []
    gate = asyncio.Event()

    async def flush(batch: list[int]) -> None:
        await gate.wait()  # the database is stuck
        written.extend(batch)

    writer: BatchWriter[int] = BatchWriter("test", flush, wait_limit=0.05)
    writer.start()
    try:
        with pytest.raises(TimeoutError):
            await writer.put(1)
        with pytest.raises(TimeoutError):  # queued behind the stuck batch: fails too
            await writer.put(2)
        assert written == []
        gate.set()  # the database is back
        await writer.put(3)
        assert written == [1, 2, 3]
    finally:
        await writer.close(within=1.0)


async def test_items_that_arrive_together_are_written_in_one_batch() -> None:
    batches: list[list[int]] = []

    async def flush(batch: list[int]) -> None:
        batches.append(batch)
        await asyncio.sleep(0.01)

    writer: BatchWriter[int] = BatchWriter("test", flush)
    writer.start()
    try:
        await asyncio.gather(*(writer.put(i) for i in range(50)))
    finally:
        await writer.close(within=1.0)
    assert sorted(i for b in batches for i in b) == list(range(50))
    assert len(batches) < 50

"""Group commit: waits that time out, and rows that are still written afterwards."""

from __future__ import annotations

import asyncio
import itertools

import orjson
import pytest

from router.batcher import BatchWriter, RowRefused


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


async def test_a_row_json_cannot_hold_is_dropped_its_wait_told_and_the_rest_written() -> None:
    written: list[str] = []

    async def flush(batch: list[str]) -> None:
        orjson.dumps(batch)  # as lookup.journal and lookup.decisions encode a batch
        written.extend(batch)

    writer: BatchWriter[str] = BatchWriter("test", flush)
    writer.start()
    try:  # a lone surrogate: not retried forever, holding up what is queued behind it
        results = await asyncio.wait_for(asyncio.gather(
            *(writer.put(s) for s in ("a", "\ud800", "b")), return_exceptions=True), 5)
    finally:
        await writer.close(within=1.0)
    assert written == ["a", "b"]
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], RowRefused)  # not told it was stored


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


async def test_a_spaced_writer_writes_an_idle_item_at_once_and_a_busy_stream_in_few_statements(
) -> None:
    starts: list[float] = []
    rows: list[int] = []
    loop = asyncio.get_running_loop()

    async def flush(batch: list[int]) -> None:
        starts.append(loop.time())
        rows.extend(batch)  # an instant database: without spacing, one statement per item

    async def timed_put(i: int) -> float:
        asked = loop.time()
        await writer.put(i)
        return loop.time() - asked

    writer: BatchWriter[int] = BatchWriter("test", flush, spacing=0.05)
    writer.start()
    try:
        assert await timed_put(-1) < 0.03  # the writer was quiet: no wait for company
        await asyncio.sleep(0.1)
        waits = []
        began = loop.time()
        for i in range(40):  # one item every 5 ms for 0.2 s
            waits.append(asyncio.ensure_future(timed_put(i)))
            await asyncio.sleep(0.005)
        took = await asyncio.gather(*waits)
        span = loop.time() - began
    finally:
        await writer.close(within=1.0)
    assert rows == [-1, *range(40)]
    busy = starts[1:]
    assert len(busy) <= span / 0.05 + 2  # one statement per spacing, not one per item
    gaps = [b - a for a, b in itertools.pairwise(busy)]
    assert min(gaps) >= 0.049
    assert max(took) < 0.05 + 0.05  # nobody waits much past one spacing

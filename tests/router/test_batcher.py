"""Group commit: waits that time out, and rows that are still written afterwards."""

from __future__ import annotations

import asyncio
import itertools

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


async def test_a_writer_with_release_ends_a_batchs_waits_a_few_per_turn_of_the_loop() -> None:
    ended_at: dict[int, int] = {}
    turns = 0
    gate = asyncio.Event()

    async def flush(_batch: list[int]) -> None:
        await gate.wait()

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    async def put(i: int) -> None:
        await writer.put(i)
        ended_at[i] = turns

    writer: BatchWriter[int] = BatchWriter("test", flush, release=3)
    writer.start()
    counter = asyncio.create_task(count_turns())
    try:
        puts = [asyncio.create_task(put(i)) for i in range(8)]
        await asyncio.sleep(0.01)  # all eight queued, the first batch is being written
        gate.set()
        await asyncio.gather(*puts)
    finally:
        counter.cancel()
        await writer.close(within=1.0)
    # the batch may be the first item alone, then the seven others; either way no turn
    # of the loop ends more than three waits, and they end in the order they came
    per_turn: dict[int, int] = {}
    for turn in ended_at.values():
        per_turn[turn] = per_turn.get(turn, 0) + 1
    assert max(per_turn.values()) <= 3
    assert len(per_turn) >= 3
    assert sorted(ended_at, key=lambda i: (ended_at[i], i)) == list(range(8))


async def test_a_writer_cancelled_while_it_ends_waits_ends_the_rest_too() -> None:
    async def flush(_batch: list[int]) -> None:
        pass

    writer: BatchWriter[int] = BatchWriter("test", flush, release=1)
    writer.start()
    puts = [asyncio.ensure_future(writer.put(i)) for i in range(5)]
    await puts[0]  # the batch is written and its first wait ended; four are left
    await writer.close(within=0.0)  # cancels the writer between two turns
    await asyncio.wait_for(asyncio.gather(*puts), 1.0)  # the written rows' waits all end


def test_a_release_below_one_is_refused() -> None:
    async def flush(_batch: list[int]) -> None:
        pass

    with pytest.raises(ValueError, match="release"):
        BatchWriter("test", flush, release=0)

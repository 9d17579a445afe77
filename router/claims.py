"""Never two routes for one entry: a claim per entry, in this process and across replicas.

The process claim is a bounded in-memory set. The replica claim is an INSERT
that only one replica can win. Claims that arrive together go out together
(one statement per batch, group-commit style), so a burst of calls costs a
few round trips, not one each. A caller waits for its answer a few
milliseconds at most; if the database does not answer in time, or is down,
routing goes on from memory with the process claim alone (a late route is
worse than a rare duplicate while the database is unhealthy). A statement
that answers late still lands, so the other replicas still see the claim.

The claim touches ``route_claims`` only (an unlogged table). Whether the call
already ended is known from the events this process received, checked before
and after the claim: reading the journal in the same statement measured at
twice the claim's latency under load.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from contextlib import suppress

import asyncpg

from router.batcher import give_up

logger = logging.getLogger(__name__)

__all__ = ["Claims", "prepare_claim"]

_REMEMBER = 200_000  # entries remembered per process (a few hours of heavy traffic)
_BATCH = 500

_CLAIM = """
INSERT INTO route_claims (account_id, entry_id)
SELECT * FROM unnest($1::int4[], $2::text[])
ON CONFLICT DO NOTHING
RETURNING account_id, entry_id
"""


async def prepare_claim(con: asyncpg.Connection) -> None:
    """Pool ``init``: parse the claim once per connection, not on the first call's clock."""
    await con.prepare(_CLAIM)


_Ask = tuple[int, str, "asyncio.Future[bool | None]"]


class Claims:
    __slots__ = ("_ended", "_local", "_pending", "_pool", "_task", "_wake", "_within")

    def __init__(self, pool: asyncpg.Pool, *, within_ms: int) -> None:
        self._pool = pool
        self._within = within_ms / 1000
        # string keys: the garbage collector does not track str, it tracks tuples
        self._local: OrderedDict[str, None] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._pending: list[_Ask] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="route-claims")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def claim_here(self, account_id: int, entry_id: str) -> bool:
        key = f"{account_id}:{entry_id}"
        if key in self._local:
            return False
        self._local[key] = None
        if len(self._local) > _REMEMBER:
            self._local.popitem(last=False)
        return True

    def mark_ended(self, account_id: int, call_or_entry: str) -> None:
        """The greeting leg (call_id) or the entry ended: a trigger for it is too late."""
        self._ended[f"{account_id}:{call_or_entry}"] = None
        if len(self._ended) > _REMEMBER:
            self._ended.popitem(last=False)

    def ended(self, account_id: int, entry_id: str, call_id: str) -> bool:
        ended = self._ended
        return f"{account_id}:{call_id}" in ended or f"{account_id}:{entry_id}" in ended

    async def claim_shared(self, account_id: int, entry_id: str) -> bool | None:
        """True: ours. False: another replica's. None: no answer in time."""
        answer: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._pending.append((account_id, entry_id, answer))
        self._wake.set()
        timer = asyncio.get_running_loop().call_later(self._within, give_up, answer)
        try:
            return await answer  # on a timeout the batch still runs to its end
        except TimeoutError:
            logger.warning("route claim not answered in time; routing from memory",
                           extra={"within_ms": self._within * 1000})
            return None
        finally:
            timer.cancel()

    async def _run(self) -> None:
        # One batch at a time: measured, two in flight cost more than they saved.
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
                await self._claim(batch)

    async def _claim(self, batch: list[_Ask]) -> None:
        try:
            async with self._pool.acquire() as con:
                rows = await con.fetch(_CLAIM, [a[0] for a in batch], [a[1] for a in batch])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("route claims failed; routing from memory",
                           extra={"error": repr(exc), "claims": len(batch)})
            for *_, answer in batch:
                if not answer.done():
                    answer.set_result(None)
            return
        won = {(r["account_id"], r["entry_id"]) for r in rows}
        for account_id, entry_id, answer in batch:
            if not answer.done():
                answer.set_result((account_id, entry_id) in won)

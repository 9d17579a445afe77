"""Never two routes for one entry: a claim per entry, in this process and across replicas.

The process claim is a bounded in-memory set. The replica claim is one short
INSERT that only one replica can win; it is given a few milliseconds. If the
database does not answer in time, or is down, routing goes on from memory
with the process claim alone: a late route is worse than a rare duplicate
across replicas while the database is unhealthy.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import asyncpg

logger = logging.getLogger(__name__)

__all__ = ["Claims"]

_REMEMBER = 200_000  # entries remembered per process (a few hours of heavy traffic)

# No route after the greeting ended: the journal may already know of it.
_CLAIM = """
INSERT INTO route_claims (account_id, entry_id)
SELECT $1, $2
WHERE NOT EXISTS (
    SELECT 1 FROM call_events
    WHERE account_id = $1 AND entry_id = $2
      AND (kind = 'summary' OR (call_id = $3 AND call_state = 'Disconnected')))
ON CONFLICT DO NOTHING
RETURNING true
"""


class Claims:
    __slots__ = ("_ended", "_local", "_pool", "_within")

    def __init__(self, pool: asyncpg.Pool, *, within_ms: int) -> None:
        self._pool = pool
        self._within = within_ms / 1000
        self._local: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._ended: OrderedDict[tuple[int, str], None] = OrderedDict()

    def claim_here(self, account_id: int, entry_id: str) -> bool:
        key = (account_id, entry_id)
        if key in self._local:
            return False
        self._local[key] = None
        if len(self._local) > _REMEMBER:
            self._local.popitem(last=False)
        return True

    def mark_ended(self, account_id: int, call_or_entry: str) -> None:
        """The greeting leg (call_id) or the entry ended: a trigger for it is too late."""
        self._ended[(account_id, call_or_entry)] = None
        if len(self._ended) > _REMEMBER:
            self._ended.popitem(last=False)

    def ended(self, account_id: int, entry_id: str, call_id: str) -> bool:
        return (account_id, call_id) in self._ended or (account_id, entry_id) in self._ended

    async def claim_shared(self, account_id: int, entry_id: str, call_id: str) -> bool | None:
        """True: ours. False: another replica's, or the call ended. None: no answer in time."""
        try:
            async with asyncio.timeout(self._within):
                async with self._pool.acquire() as con:
                    won = await con.fetchval(_CLAIM, account_id, entry_id, call_id)
        except TimeoutError:
            return None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("route claim failed; routing from memory", extra={"error": repr(exc)})
            return None
        return bool(won)

"""Health notes: whether each account's PBX API and CRM answered lately.

The clients tell (``mango.client.PbxObserver``, ``megaplan.client.CrmObserver``
through ``sync.account.CrmHealth``): after every command and API call, a note
in memory — the time of the newest success, or of the newest failure and its
reason. That is a dict update, cheap enough for the routing path, which never
waits for the database for it. One task writes what changed to
``service_health`` every ``FLUSH_S`` seconds at most (one statement for every
account; nothing when nothing was seen), so any replica answers
``GET /api/health`` the same, a few seconds behind at most.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from lookup.accounts import Account
from lookup.health import CRM, PBX, HealthNote, Service, write_health
from mango.client import PbxAccount

logger = logging.getLogger(__name__)

__all__ = ["FLUSH_S", "HealthRecorder"]

FLUSH_S = 2.0
_WRITE_TIMEOUT_S = 5.0
_WRITE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class HealthRecorder:
    """Notes in memory, written by ``run()`` (a task) and ``flush()`` (at shutdown)."""

    __slots__ = ("_every", "_notes", "_pool")

    def __init__(self, pool: asyncpg.Pool, *, every: float = FLUSH_S) -> None:
        self._pool = pool
        self._every = every
        self._notes: dict[tuple[int, Service], HealthNote] = {}  # since the last write

    def note(self, account_id: int, service: Service, error: str | None) -> None:
        """A call to ``service`` answered (``error`` None) or failed, just now."""
        key = (account_id, service)
        found = self._notes.get(key)
        if found is None:
            found = self._notes[key] = HealthNote(account_id, service)
        if error is None:
            found.ok_at = time.time()
        else:
            found.error_at, found.error = time.time(), error

    def pbx(self, account: PbxAccount, error: str | None) -> None:
        """The PBX client's observer (its commands carry the service's accounts)."""
        if isinstance(account, Account):
            self.note(account.id, PBX, error)

    def crm(self, account_id: int, error: str | None) -> None:
        """The CRM clients' observer (sync and the outbox)."""
        self.note(account_id, CRM, error)

    def forget(self, account: Account) -> None:
        """The account is gone: nothing of it is written (its rows went with it)."""
        for service in (PBX, CRM):
            self._notes.pop((account.id, service), None)

    def pending(self) -> list[HealthNote]:
        return list(self._notes.values())

    async def flush(self) -> None:
        """Write what was seen since the last write; on failure keep it for the next."""
        if not self._notes:
            return
        notes, self._notes = self._notes, {}
        try:
            async with asyncio.timeout(_WRITE_TIMEOUT_S):
                await write_health(self._pool, list(notes.values()))
        except BaseException:
            for key, note in notes.items():  # merged with what came meanwhile
                newer = self._notes.get(key)
                if newer is not None:
                    note.merge(newer)
                self._notes[key] = note
            raise

    async def run(self) -> None:
        """Write the notes every ``every`` seconds, for as long as the app runs."""
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.flush()
            except _WRITE_ERRORS as exc:
                logger.warning("health notes not written; trying again",
                               extra={"error": f"{type(exc).__name__}: {exc}"})

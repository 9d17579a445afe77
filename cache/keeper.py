"""Keeping every replica's index equal to the database.

A dedicated connection LISTENs on ``mango_index`` (the triggers name the phone
keys, clients or employees a committed statement changed, or ask for a whole
reload) and ``mango_accounts``. One consumer applies notifications in order,
coalescing what queued up while it worked, so a bulk import costs one reload,
not one per batch. When the listening connection is lost, notifications may
have been missed: after reconnecting, everything is reloaded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from cache.accounts import AccountRegistry
from cache.index import AccountIndex, IndexRegistry
from cache.loader import build_base, load_employees, refresh
from lookup.accounts import fetch_accounts
from lookup.db import cancel_wins

logger = logging.getLogger(__name__)

__all__ = ["IndexKeeper"]

_PING_SECONDS = 5.0
_COMPACT_AT = 200_000  # overlay entries before the account's base is rebuilt
_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)


@dataclass(slots=True)
class _Pending:
    everything: bool = False  # a TRUNCATE: rebuild every account
    accounts: bool = False
    reload: set[int] = field(default_factory=set)
    employees: set[int] = field(default_factory=set)
    phones: defaultdict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    clients: defaultdict[int, set[int]] = field(default_factory=lambda: defaultdict(set))

    def add(self, channel: str, payload: str) -> None:
        if channel == "mango_accounts":
            self.accounts = True
            return
        try:
            note: Any = orjson.loads(payload)
            account, kind = int(note["a"]), note["k"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            logger.warning("unreadable index notification", extra={"payload": payload[:200]})
            return
        if kind == "truncate":
            self.everything = True
        elif kind == "all":
            self.reload.add(account)
        elif kind == "e":
            self.employees.add(account)
        elif kind == "p":
            self.phones[account].update(int(r) for r in note.get("r", ()))
        elif kind == "c":
            self.clients[account].update(int(r) for r in note.get("r", ()))

    def __bool__(self) -> bool:
        return bool(self.everything or self.accounts or self.reload or self.employees
                    or self.phones or self.clients)


class IndexKeeper:
    """Builds the indexes at start and keeps them current; run ``run()`` as a task."""

    __slots__ = ("_accounts", "_dsn", "_indexes", "_pending", "_pool", "_wake", "ready")

    def __init__(
        self, dsn: str, pool: asyncpg.Pool, indexes: IndexRegistry, accounts: AccountRegistry
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._indexes = indexes
        self._accounts = accounts
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self.ready = asyncio.Event()

    def _on_notify(self, _con: object, _pid: int, channel: str, payload: object) -> None:
        self._pending.add(channel, str(payload))
        self._wake.set()

    async def run(self) -> None:
        attempt = 0
        while True:
            lost = asyncio.Event()
            try:
                con = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                logger.warning("index listener cannot connect; retrying",
                               extra={"error": str(exc), "retry_s": delay})
                attempt += 1
                await asyncio.sleep(delay)
                continue
            try:
                con.add_termination_listener(lambda _c, closed=lost: closed.set())
                await con.add_listener("mango_index", self._on_notify)
                await con.add_listener("mango_accounts", self._on_notify)
                # Listening before loading: nothing committed after the load is missed.
                await self.reload_all()
                attempt = 0
                self.ready.set()
                await self._consume(con, lost)
            except Exception as exc:  # the keeper must outlive any failure: reload after it
                cancel_wins(exc)
                logger.warning("index listener lost; will reload after reconnecting",
                               extra={"error": repr(exc)}, exc_info=True)
            finally:
                with suppress(Exception):
                    await con.close(timeout=1)
            await asyncio.sleep(_RETRY_SECONDS[0])

    async def _consume(self, con: asyncpg.Connection, lost: asyncio.Event) -> None:
        lost_wait = asyncio.ensure_future(lost.wait())
        try:
            while not lost.is_set():
                wake_wait = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait({wake_wait, lost_wait}, timeout=_PING_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                wake_wait.cancel()
                if lost.is_set():
                    raise asyncpg.InterfaceError("listening connection closed")
                if not done:
                    # Quiet for a while: make sure the listener is still connected. A
                    # connection dropped without a reset would otherwise go unnoticed.
                    await con.execute("SELECT 1", timeout=_PING_SECONDS)
                    continue
                self._wake.clear()
                pending, self._pending = self._pending, _Pending()
                if pending:
                    await self._apply(pending)
        finally:
            lost_wait.cancel()

    async def reload_all(self) -> None:
        """Accounts, then every account's index, from scratch."""
        async with self._pool.acquire() as con:
            accounts = await fetch_accounts(con)
        self._accounts.replace(accounts)
        live = {a.id for a in accounts}
        for account_id in self._indexes.account_ids():
            if account_id not in live:
                self._indexes.drop(account_id)
        for account in accounts:
            await self._rebuild(account.id)
        self._indexes.loaded = True

    async def _rebuild(self, account_id: int) -> None:
        account = self._accounts.by_id(account_id)
        if account is None:
            return
        index = self._indexes.get(account_id) or AccountIndex(account.settings.default_region)
        index.region = account.settings.default_region
        started = asyncio.get_running_loop().time()
        async with self._pool.acquire() as con:
            await build_base(con, account_id, index)
        self._indexes.put(account_id, index)
        logger.info("index built", extra={
            "account": account.name, "phones": len(index),
            "seconds": round(asyncio.get_running_loop().time() - started, 3)})

    async def _apply(self, p: _Pending) -> None:
        if p.everything:
            await self.reload_all()
            return
        if p.accounts:
            async with self._pool.acquire() as con:
                accounts = await fetch_accounts(con)
            self._accounts.replace(accounts)
            for account_id in self._indexes.account_ids():
                if self._accounts.by_id(account_id) is None:
                    self._indexes.drop(account_id)
            for account in accounts:
                index = self._indexes.get(account.id)
                if index is None:
                    p.reload.add(account.id)
                else:
                    index.region = account.settings.default_region
        for account_id in p.reload:
            await self._rebuild(account_id)
        async with self._pool.acquire() as con:
            for account_id in p.employees - p.reload:
                index = self._indexes.get(account_id)
                if index is not None:
                    index.set_employees(await load_employees(con, account_id))
            for account_id in (set(p.phones) | set(p.clients)) - p.reload:
                index = self._indexes.get(account_id)
                if index is None:
                    continue
                await refresh(con, account_id, index, phone_keys=p.phones.get(account_id, ()),
                              client_uids=p.clients.get(account_id, ()))
                if index.overlay_size > _COMPACT_AT:
                    self._pending.reload.add(account_id)
                    self._wake.set()

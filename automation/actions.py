"""Applying one outbox action to Megaplan, so that it lands once.

A create is never re-sent blind: an attempt that timed out or was answered
5xx may have landed (the action is then ``uncertain``), so the next attempt
first looks for what it made — a client by its phone, a deal by its client,
name, program and manager — and only creates when nothing is there. A
client's calls in one minute make deals of one name, so a deal another
action made or found (recorded in the outbox, or made by this applier and
not recorded yet) is never taken for this one's; one client's deals are made
one at a time, so no lookup sees a deal whose maker has not heard back yet.
Reads, call records (idempotent by ``providerId``) and responsible updates
are safe to repeat.
A created client is written into the copy at once, so the index routes the
caller's next call to its responsible.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from lookup.accounts import Account
from lookup.importer import ClientRecord, replace_responsibles, write_clients
from lookup.outbox import ActionRow, taken_crm_ids
from lookup.programs import state_types
from mango.recording import recording_link
from megaplan import mapping as mp
from megaplan.client import MegaplanClient
from megaplan.errors import MappingError, MegaplanError, MegaplanUncertainError

logger = logging.getLogger(__name__)

__all__ = ["LINE_FIELD_TITLE", "ActionApplier", "DependencyFailed"]

LINE_FIELD_TITLE = "Номер линии MANGO OFFICE"
_RECORDING_LINK_DAYS = 365  # how long the signed link on the card works
_LINE_FIELD_TTL_S = 600.0  # the CRM's client fields are looked up again after this
_RECENT_DEALS = 10_000  # made here and perhaps not recorded yet (recorded within seconds)


class DependencyFailed(Exception):
    """The action that was to make this one's client did not."""


class _KeyedLocks:
    """One lock per key, forgotten when nobody holds it or waits for it."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class ActionApplier:
    """Applies actions of one account through its CRM client; returns (crm id, note)."""

    __slots__ = ("_account", "_crm", "_deal_clients", "_line_field", "_line_field_at",
                 "_made_deals", "_pool")

    def __init__(self, crm: MegaplanClient, pool: asyncpg.Pool, account: Account) -> None:
        self._crm = crm
        self._pool = pool
        self._account = account
        self._line_field: str | None = None
        self._line_field_at = -math.inf  # when it was looked up (monotonic)
        self._deal_clients = _KeyedLocks()
        self._made_deals: OrderedDict[str, None] = OrderedDict()

    @property
    def account(self) -> Account:
        return self._account

    @account.setter
    def account(self, account: Account) -> None:
        self._account = account

    async def apply(self, row: ActionRow) -> tuple[str | None, str | None]:
        client_id = row.payload.get("client_id")
        if row.depends_on is not None:
            if row.dependency_state != "done" or not row.dependency_crm_id:
                raise DependencyFailed(f"its client was not made (action {row.depends_on}: "
                                       f"{row.dependency_state})")
            client_id = row.dependency_crm_id
        if row.action == "create_client":
            return await self._create_client(row)
        if not isinstance(client_id, str):
            raise DependencyFailed("no client to act on")
        if row.action == "create_deal":
            return await self._create_deal(row, client_id)
        if row.action == "record_call":
            return await self._record_call(row, client_id)
        if row.action == "set_responsible":
            return await self._set_responsible(row, client_id)
        raise ValueError(f"unknown action {row.action!r}")

    async def _create_client(self, row: ActionRow) -> tuple[str | None, str | None]:
        p = row.payload
        if row.uncertain:
            digits = str(p["phone_key"])
            for found in await self._crm.find_contractors_by_phone(digits):
                if not found.dropped and str(p["responsible_id"]) in {
                        r.id for r in found.responsibles} and any(
                        _digits(phone).endswith(digits[-10:]) for phone in found.phones):
                    await self._remember(found.id, p)
                    return found.id, "made by an earlier attempt"
        extra = None
        if p.get("line") and (field := await self._line_field_name()) is not None:
            extra = {field: str(p["line"])}
        try:
            client = await self._crm.create_client(
                name=p["name"], phones=[p["phone"]], responsible_ids=[p["responsible_id"]],
                extra=extra)
        except MappingError as exc:
            raise _unread(exc) from None
        await self._remember(client.id, p)
        return client.id, None

    async def _remember(self, client_id: str, p: dict[str, Any]) -> None:
        """Into the copy (and so every replica's index) at once; the sync confirms it later."""
        async with self._pool.acquire() as con:
            await write_clients(con, self._account.id, [ClientRecord(
                id=client_id, kind="human", name=str(p["name"]),
                phones=((int(p["phone_key"]), str(p["phone"])),),
                responsibles=(("employee", str(p["responsible_id"])),),
                line_number=p.get("line"))])

    async def _line_field_name(self) -> str | None:
        """The line's client field, looked up again every ``_LINE_FIELD_TTL_S``: an admin
        may add it (or rename it) while the worker runs."""
        if time.monotonic() - self._line_field_at >= _LINE_FIELD_TTL_S:
            fields = await self._crm.extra_fields()
            self._line_field = next((f.name for f in fields if f.hr_name == LINE_FIELD_TITLE),
                                    None)
            self._line_field_at = time.monotonic()
            if self._line_field is None:
                logger.warning("the CRM has no client field %r: the line is not recorded",
                               LINE_FIELD_TITLE, extra={"account": self._account.name})
        return self._line_field

    async def _create_deal(self, row: ActionRow, client_id: str) -> tuple[str | None, str | None]:
        async with self._deal_clients.hold(client_id):
            p = row.payload
            if p.get("only_if_none_open") or row.uncertain:
                deals = await self._crm.client_deals(client_id)
                if row.uncertain and (made := await self._made_before(row, deals)) is not None:
                    self._made_deal(made.id)
                    return made.id, "made by an earlier attempt"
                if p.get("only_if_none_open") and await self._any_open(deals):
                    return None, "the client has an open deal"
            try:
                deal = await self._crm.create_deal(
                    program_id=p["program_id"], state_id=p.get("state_id"),
                    contractor_id=client_id, manager_id=p["manager_id"], name=p["name"])
            except MappingError as exc:
                raise _unread(exc) from None
            self._made_deal(deal.id)
            return deal.id, None

    async def _made_before(self, row: ActionRow, deals: Sequence[mp.Deal]) -> mp.Deal | None:
        """The deal an earlier attempt of this action made, if one did: as it asked, and
        not another action's."""
        p = row.payload
        alike = [d for d in deals if d.name == p["name"] and d.program_id == p["program_id"]
                 and d.manager_id in (None, p["manager_id"]) and d.id not in self._made_deals]
        if not alike:
            return None
        async with self._pool.acquire() as con:
            taken = await taken_crm_ids(con, self._account.id, row.action,
                                        [d.id for d in alike], other_than=row.id)
        return next((d for d in alike if d.id not in taken), None)

    def _made_deal(self, deal_id: str) -> None:
        self._made_deals[deal_id] = None
        while len(self._made_deals) > _RECENT_DEALS:
            self._made_deals.popitem(last=False)

    async def _any_open(self, deals: list[mp.Deal]) -> bool:
        """A deal is open while its state's type is active; the copy's programs tell the
        type when the CRM's answer does not carry it."""
        types: dict[tuple[str, str], str] | None = None
        for d in deals:
            if d.is_open is None:
                if types is None:
                    types = await state_types(self._pool, self._account.id)
                if types.get((d.program_id or "", d.state_id or ""), "active") == "active":
                    return True
            elif d.is_open:
                return True
        return False

    async def _record_call(self, row: ActionRow, client_id: str) -> tuple[str | None, str | None]:
        p = row.payload
        a = self._account
        expires = int(time.time()) + _RECORDING_LINK_DAYS * 86400
        links = tuple(recording_link(a.mango_api_url, a.mango_api_key, a.mango_api_salt, rid,
                                     expires=expires) for rid in p.get("recordings") or ())
        try:
            await self._crm.record_calls([mp.CallInfo(
                provider_id=row.entry_id, type=p["type"], from_phone=p.get("from_phone"),
                to_phone=p.get("to_phone"), from_user=p.get("from_user"),
                to_user=p.get("to_user"), time_from=_when(p["time_from"]),
                time_to=_when(p["time_to"]), record_links=links)])
        except MegaplanError as exc:
            if exc.status != 404:
                raise
            # a CRM without call history: a comment on the card instead (the fallback)
            comment = await self._crm.add_comment(
                client_id, _call_comment(p, links, a.settings.timezone))
            # the client's id, as a record's: the post with the recordings acts on it
            return client_id, f"{'comment ' + comment if comment else 'a comment'}: " \
                "the CRM has no call history"
        return client_id, None  # the CRM puts it on the card of the client with that phone

    async def _set_responsible(self, row: ActionRow, client_id: str
                               ) -> tuple[str | None, str | None]:
        responsible = str(row.payload["responsible_id"])
        client = await self._crm.update_client(client_id, responsible_ids=[responsible])
        async with self._pool.acquire() as con:  # the copy at once, as with a created client
            await replace_responsibles(con, self._account.id, client_id,
                                       (("employee", responsible),))
        return client.id, None


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _unread(exc: MappingError) -> MegaplanUncertainError:
    """A create answered with an object that cannot be read: it was made (looked for
    before it is made again), where a read that cannot be read is a failure like any
    other. (An answer that is not JSON at all is a MegaplanError, retried; the claim makes
    any create claimed again uncertain.)"""
    return MegaplanUncertainError(0, [{"message": f"its answer could not be read: {exc}"}])


_CALL_TITLES = {"in": "Входящий звонок", "out": "Исходящий звонок", "miss": "Пропущенный звонок"}


def _call_comment(p: dict[str, Any], links: Sequence[str], timezone: str) -> str:
    """A call record as a comment's text, its times in the account's timezone."""
    zone = ZoneInfo(timezone)
    start, end = _when(p["time_from"]).astimezone(zone), _when(p["time_to"]).astimezone(zone)
    lines = [f"{_CALL_TITLES.get(str(p['type']), 'Звонок')}: "
             f"{p.get('from_phone') or '—'} → {p.get('to_phone') or '—'}",
             f"{start:%d.%m.%Y %H:%M}–{end:%H:%M}"]
    lines.extend(f"Запись: {link}" for link in links)
    return "\n".join(lines)


def _when(unix: Any) -> datetime:
    return datetime.fromtimestamp(int(unix or 0), UTC)

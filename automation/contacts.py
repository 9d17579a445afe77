"""Who last talked to a number: what ``route_unknown_to_last_contact`` routes by.

A contact is a call the call model (``build_call``) says an employee had with
an outside number: an incoming call answered (the last employee who answered
it, after any transfers) or an outgoing call (the employee who made it,
answered or not). It is learned from the shared journal, so the legs of one
call may have reached any replicas:

- a replica that journals a notification that can make a contact (an
  employee's leg answered or calling out, the summary of an answered or
  outgoing call: ``makes_contact``) models the call from all of its journaled
  events, wherever they arrived, and NOTIFYs ``mango_contacts`` with what it
  found; every replica applies that here;
- at start, when an account turns the setting on or widens its window, and
  after the listening connection was lost, the account's calls of the window
  are read back from the journal and modelled the same way. A setting turned
  on is read back a second later, once every replica has heard of it: what a
  replica journaled before it had is then in the journal.

The newest contact of a number wins whatever order they are heard in, so the
two ways merge without coordination. Only accounts with the setting on are
learned and kept, each bounded by its window: a number is one dict entry (a
phone key and an int packing the employee and the time in ms, about 110
bytes), and entries older than the window are ignored when read, swept from
the front every minute (the dict is in time order but for contacts heard
late) and all through hourly. Nothing here is on the routing path but ``find``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from automation.call_model import CallModel, JournalEvent, build_call
from cache.accounts import AccountRegistry
from lookup.accounts import Account
from lookup.contacts import calls_with_employees, contact_note, notify_contacts
from lookup.employees import active_extensions
from lookup.journal import JournaledEvent, entry_events
from lookup.phones import phone_key
from mango.events import CallEvent

logger = logging.getLogger(__name__)

__all__ = ["Contacts", "LastContacts", "contact_of", "makes_contact"]

_TIME_BITS = 42  # Unix milliseconds fit until 2109; the employee index sits above
_TIME_MASK = (1 << _TIME_BITS) - 1
_TICK_S = 0.2  # how often settings are looked at
_BATCH_WAIT_S = 0.05  # notifications of one call that come together are learned together
_SETTLE_S = 1.0  # a setting turned on is read back from the journal this much later
_SWEEP_EVERY_S = 60.0
_SWEEP_ALL_EVERY_S = 3600.0  # contacts heard out of time order are not at the front
_RETRY_S = 1.0
_SWEEP_STEP = 20_000  # entries swept between yields to the event loop
_LOAD_CHUNK = 500  # calls read from the journal at a time


def makes_contact(kind: str, call: CallEvent | None, body: Mapping[str, Any]) -> bool:
    """Whether a notification can make its call a contact: an employee's leg answered,
    an employee calling out, or the summary of an answered or outgoing call."""
    if kind == "summary":
        return body.get("entry_result") == 1 or body.get("call_direction") == 2
    if kind != "call" or call is None:
        return False
    if call.call_state == "Connected" and call.location == "abonent" and call.to_extension:
        return True
    return (call.call_state in ("Appeared", "Connected") and bool(call.from_extension)
            and bool(call.to_number) and not call.to_extension)


def contact_of(call: CallModel, employees: Mapping[str, str], region: str
               ) -> tuple[int, str, float] | None:
    """(phone key, employee CRM id, when) of a call an employee had with a number.

    ``employees`` maps extensions to active employees (``active_extensions``);
    an extension no active employee has is nobody to call back to.
    """
    if call.direction == "in" and call.answered:
        extension = call.last_handled
    elif call.direction == "out":
        extension = call.caller_extension
    else:
        return None
    employee = employees.get(extension) if extension else None
    key = phone_key(call.number, region) if call.number else None
    if employee is None or key is None:
        return None
    return key, employee, call.last_received_at


class Contacts:
    """One account's remembered numbers, in time order (a dict keeps insertion order,
    and a newer contact is moved to the end), so expired ones are at the front."""

    __slots__ = ("_employee_ids", "_employees", "by_key", "load_at", "loaded", "window_s")

    def __init__(self, window_s: int, load_at: float = 0.0) -> None:
        self.window_s = window_s
        self.by_key: dict[int, int] = {}  # phone key -> employee index << 42 | Unix ms
        self._employees: list[str] = []  # index -> employee CRM id
        self._employee_ids: dict[str, int] = {}
        self.loaded = False  # the journal's window read
        self.load_at = load_at  # not before (monotonic)

    def __len__(self) -> int:
        return len(self.by_key)

    def find(self, key: int, now: float) -> str | None:
        packed = self.by_key.get(key)
        if packed is None or (packed & _TIME_MASK) < (now - self.window_s) * 1000:
            return None
        return self._employees[packed >> _TIME_BITS]

    def remember(self, key: int, employee_id: str, at: float) -> None:
        ms = int(at * 1000)
        old = self.by_key.get(key)
        if old is not None:
            if (old & _TIME_MASK) > ms:
                return  # news older than what is known
            del self.by_key[key]  # to the end: the dict stays in time order
        index = self._employee_ids.get(employee_id)
        if index is None:
            index = self._employee_ids[employee_id] = len(self._employees)
            self._employees.append(employee_id)
        self.by_key[key] = index << _TIME_BITS | ms

    def sweep(self, now: float, limit: int = _SWEEP_STEP) -> int:
        """Forget up to ``limit`` contacts older than the window, from the front."""
        oldest = (now - self.window_s) * 1000
        stale: list[int] = []
        for key, packed in self.by_key.items():
            if (packed & _TIME_MASK) >= oldest or len(stale) >= limit:
                break
            stale.append(key)
        for key in stale:
            del self.by_key[key]
        return len(stale)

    def forget_older(self, keys: list[int], now: float) -> None:
        """Forget those of ``keys`` older than the window, wherever they are."""
        oldest = (now - self.window_s) * 1000
        by_key = self.by_key
        for key in keys:
            packed = by_key.get(key)
            if packed is not None and (packed & _TIME_MASK) < oldest:
                del by_key[key]


class LastContacts:
    """Every account's contacts that routing may need; run ``run()`` as a task."""

    __slots__ = ("_accounts", "_books", "_clock", "_heard", "_pool", "_stale", "_wake")

    def __init__(self, pool: asyncpg.Pool, accounts: AccountRegistry, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._accounts = accounts
        self._clock = clock
        self._books: dict[int, Contacts] = {}
        self._heard: set[tuple[int, str]] = set()  # calls to learn from, journaled here
        self._stale = False  # notifications may have been missed: read the journal again
        self._wake = asyncio.Event()

    # -- the hot path -------------------------------------------------------------------

    def find(self, account_id: int, key: int) -> str | None:
        """The employee who last talked to ``key`` within the account's window, if any."""
        book = self._books.get(account_id)
        return None if book is None else book.find(key, self._clock())

    # -- upkeep -------------------------------------------------------------------------

    def book(self, account_id: int) -> Contacts | None:
        return self._books.get(account_id)

    def seen(self, account_id: int, entry_id: str) -> None:
        """A notification that ``makes_contact`` was journaled here: learn from its call."""
        self._heard.add((account_id, entry_id))
        self._wake.set()

    def on_notify(self, payload: str) -> None:
        """A ``mango_contacts`` notification: {"a": account, "n": key, "e": employee, "t": at}."""
        try:
            note: Any = orjson.loads(payload)
            account_id, key, employee, at = (int(note["a"]), int(note["n"]), str(note["e"]),
                                             float(note["t"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            logger.warning("unreadable contact notification", extra={"payload": payload[:200]})
            return
        book = self._books.get(account_id)
        if book is not None:  # an account turned on later reads the journal then
            book.remember(key, employee, at)

    async def resync(self) -> None:
        """After (re)connecting the listener: read every kept account's window again."""
        self._stale = True

    async def run(self) -> None:
        next_sweep = time.monotonic() + _SWEEP_EVERY_S
        next_full = time.monotonic() + _SWEEP_ALL_EVERY_S
        while True:
            with suppress(TimeoutError):
                async with asyncio.timeout(_TICK_S):
                    await self._wake.wait()
            if self._wake.is_set():
                self._wake.clear()
                await asyncio.sleep(_BATCH_WAIT_S)
            try:
                await self._learn()
                await self._follow_settings()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("last contacts: cannot read the journal now; will retry",
                               extra={"error": repr(exc)})
                await asyncio.sleep(_RETRY_S)
            now = time.monotonic()
            if now >= next_sweep:
                await self.sweep(everything=now >= next_full)
                next_sweep = now + _SWEEP_EVERY_S
                if now >= next_full:
                    next_full = now + _SWEEP_ALL_EVERY_S

    async def _learn(self) -> None:
        """Model the calls heard of from the whole journal; announce their contacts."""
        if not self._heard:
            return
        heard, self._heard = self._heard, set()
        by_account: dict[int, list[str]] = {}
        for account_id, entry_id in heard:
            by_account.setdefault(account_id, []).append(entry_id)
        for account_id, entries in by_account.items():
            account = self._accounts.by_id(account_id)
            if account is None or not account.settings.route_unknown_to_last_contact.enabled:
                continue
            try:
                async with self._pool.acquire() as con:
                    employees = await active_extensions(con, account_id)
                    journal = await entry_events(con, account_id, entries)
                    notes = [contact_note(account_id, *found)
                             for events in journal.values()
                             if (found := _contact(events, employees, account)) is not None]
                    if notes:
                        await notify_contacts(con, notes)
            except BaseException:
                self._heard.update((account_id, e) for e in entries)  # learned again later
                raise

    async def _follow_settings(self) -> None:
        """Keep exactly the accounts with the setting on, each over its window."""
        wanted: dict[int, Account] = {}
        for account in self._accounts.all():
            if account.settings.route_unknown_to_last_contact.enabled:
                wanted[account.id] = account
        for account_id in list(self._books):
            if account_id not in wanted:
                del self._books[account_id]
        if self._stale:
            self._stale = False
            for kept in self._books.values():
                kept.loaded = False
        for account_id, account in wanted.items():
            window = account.settings.route_unknown_to_last_contact.within_hours * 3600
            book = self._books.get(account_id)
            if book is None:
                book = self._books[account_id] = Contacts(window, time.monotonic() + _SETTLE_S)
            elif window > book.window_s:
                book.loaded = False  # the older part of the new window is not in memory
            book.window_s = window
            if not book.loaded and time.monotonic() >= book.load_at:
                await self.load(account, book)

    async def load(self, account: Account, book: Contacts) -> None:
        """Read the account's calls of the window back from the journal into ``book``."""
        started = time.monotonic()
        since = datetime.fromtimestamp(self._clock() - book.window_s, UTC)
        async with self._pool.acquire() as con:
            employees = await active_extensions(con, account.id)
            entries = await calls_with_employees(con, account.id, since)
        for at in range(0, len(entries), _LOAD_CHUNK):
            async with self._pool.acquire() as con:
                journal = await entry_events(con, account.id, entries[at:at + _LOAD_CHUNK])
            for events in journal.values():
                if (found := _contact(events, employees, account)) is not None:
                    book.remember(*found)
            await asyncio.sleep(0)  # routing goes on between chunks
        book.loaded = True
        logger.info("last contacts loaded", extra={
            "account": account.name, "calls": len(entries), "numbers": len(book),
            "seconds": round(time.monotonic() - started, 3)})

    async def sweep(self, *, everything: bool = False) -> None:
        """Forget contacts older than their window, a step at a time: from the front of
        each account's dict, or (``everything``) through all of it."""
        for book in list(self._books.values()):
            swept = _SWEEP_STEP
            while swept == _SWEEP_STEP:  # a full step: there may be more
                swept = book.sweep(self._clock())
                await asyncio.sleep(0)
            if everything:
                keys = list(book.by_key)
                for at in range(0, len(keys), _SWEEP_STEP):
                    book.forget_older(keys[at:at + _SWEEP_STEP], self._clock())
                    await asyncio.sleep(0)


def _contact(events: list[JournaledEvent], employees: Mapping[str, str], account: Account
             ) -> tuple[int, str, float] | None:
    if not events:
        return None
    try:
        call = build_call(JournalEvent(kind=e.kind, payload=e.payload,
                                       received_at=e.received_at) for e in events)
    except ValueError:  # not one entry's events: nothing to learn
        return None
    return contact_of(call, employees, account.settings.default_region)

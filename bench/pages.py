"""``python -m bench.pages [--calls N]``: the admin pages' queries on a large journal.

Seeds one account with ``N`` calls (default 1,000,000) as the PBX reports them,
about seven notifications each (answered and routed, missed in the voice menu,
offered and missed, not routed, outgoing; some recorded; the newest still in
progress), the routing decision of every incoming one, the PBX's result of every
route, CRM actions for most (done, a few failed, the last hour's pending), 20,000
clients and 60 employees. Events go in by binary COPY, a chunk of calls per
statement, and its ``calls`` rows are folded after each chunk as a serving
replica folds them (the busy-legs trigger is off meanwhile: its NOTIFYs are not
what is measured). Then it times every page query (``page_queries``) through
``lookup``: median and 95th percentile over repeated runs against a 100 ms
budget per page. Last, what the ``calls`` trigger (since migration 0013 only a
mark of the statement's events, folded later) adds to a journal statement
(``journal_cost``): a call's notifications one statement each, ten new calls'
first ones in one, ten whole calls in one, with the trigger off and on in turns,
as ``write_journal`` sees it and as the server times it.

Without ``DATABASE_URL`` it runs an embedded PostgreSQL in a temporary
directory (tuned for the bulk load while seeding: no fsync, large WAL; back to
its defaults before anything is timed). With it, it makes a database of its
own on that server and drops it afterwards. Prints a table; writes
``bench/out/pages.json``.

``seed`` and ``time_pages`` are the parts a later step reuses (for instance to
time the HTTP pages on the same data): ``seed(pool_or_dsn, calls)`` fills a
migrated database and says what it made; ``page_queries(seeded)`` lists the
queries as named coroutines; ``time_it`` times any coroutine the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import hashlib
import logging
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from bench.command import output_folder, start_command
from bench.report import machine_description
from bench.stats import percentile
from lookup.accounts import add_account
from lookup.calls import calls_page, encode_cursor, find_call, fold_all, recent_calls
from lookup.conn import Conn
from lookup.employees import employee_extensions
from lookup.journal import JOURNAL_INSERT, JournalEntry, journal_args, write_journal
from lookup.overview import overview
from lookup.schema import apply_migrations

__all__ = [
    "BUDGET_MS",
    "JournalCost",
    "PageQuery",
    "PagesResult",
    "Seeded",
    "Timing",
    "format_report",
    "journal_cost",
    "main",
    "page_queries",
    "run",
    "seed",
    "time_it",
    "time_pages",
]

logger = logging.getLogger(__name__)

BUDGET_MS = 100.0
TIMEZONE = "Europe/Moscow"
LINES = ("74951112233", "74951112234", "78125550101")
_OUT = Path(__file__).resolve().parent / "out"
_CHUNK = 10_000  # calls per COPY
_EMPLOYEES = 60
_FREQUENT = 10  # callers who call far more than the rest (2 % of the calls between them)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EVENT_COLUMNS = ("account_id", "kind", "entry_id", "call_id", "seq", "call_state", "location",
                  "payload", "journal_key", "received_at")
_DECISION_COLUMNS = ("account_id", "entry_id", "call_id", "number", "outcome", "reason",
                     "client_id", "employee_id", "extension", "command_id", "pbx_status",
                     "pbx_result", "latency_us", "decided_at")
_ACTION_COLUMNS = ("account_id", "entry_id", "action", "payload", "state", "attempts",
                   "crm_id", "last_error", "due_at", "created_at", "done_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Seeded:
    """What ``seed`` made, and what the page queries look up in it."""

    account_id: int
    account: str
    timezone: str
    calls: int
    days: float  # the history they span, ending now
    events: int
    decisions: int
    actions: int
    clients: int
    seconds: float
    frequent_number: str  # a frequent caller's number (0.2 % of the calls)
    line: str  # a company line most incoming calls came in on
    entry_id: str  # a call from the middle of the history
    deep_cursor: str  # the calls page's cursor 90 % of the way back


# --- seeding -------------------------------------------------------------------------
def _entry_id(i: int) -> str:
    """Shaped like MANGO OFFICE's: base64 of the PBX's ids, 40-odd characters."""
    return base64.b64encode(f"{400000000 + i}:{1000 + i % 97}:{1700000000 + i}".encode()
                            ).decode()


def _client_number(c: int) -> str:
    return str(79160000000 + c * 37)


class _Calls:
    """Makes each call's rows; every call's events are within ``end``."""

    __slots__ = ("account_id", "actions", "clients", "decisions", "end", "events", "rng")

    def __init__(self, account_id: int, clients: int, end: float, rng: random.Random) -> None:
        self.account_id = account_id
        self.clients = clients
        self.end = end
        self.rng = rng
        self.events: list[tuple[Any, ...]] = []
        self.decisions: list[tuple[Any, ...]] = []
        self.actions: list[tuple[Any, ...]] = []

    def _event(self, kind: str, entry: str | None, t: float, payload: dict[str, Any]) -> None:
        if t > self.end:
            return  # not yet: the call is in progress
        raw = orjson.dumps(payload).decode()
        key = hashlib.md5(f"{kind}:{raw}".encode()).hexdigest()
        at = datetime.fromtimestamp(t, UTC)
        if kind == "call":
            self.events.append((self.account_id, kind, entry, payload["call_id"],
                                payload["seq"], payload["call_state"], payload["location"],
                                raw, key, at))
        else:
            self.events.append((self.account_id, kind, entry, None, None, None, None, raw,
                                key, at))

    def _leg(self, entry: str, t: float, seq: int, call_id: str, state: str, location: str,
             frm: dict[str, Any], to: dict[str, Any], command: str | None = None) -> None:
        payload: dict[str, Any] = {
            "entry_id": entry, "call_id": call_id, "timestamp": int(t), "seq": seq,
            "call_state": state, "location": location, "from": frm, "to": to,
            "disconnect_reason": 1110 if state == "Disconnected" else 0}
        if command is not None:
            payload["command_id"] = command
        self._event("call", entry, t, payload)

    def _summary(self, entry: str, t: float, direction: int, frm: dict[str, Any],
                 to: dict[str, Any], line: str, start: float, talk: float, result: int) -> None:
        self._event("summary", entry, t, {
            "entry_id": entry, "call_direction": direction, "from": frm, "to": to,
            "line_number": line, "create_time": int(start), "forward_time": int(start) + 1,
            "talk_time": int(talk), "end_time": int(t), "entry_result": result,
            "disconnect_reason": 1110})

    def _decision(self, entry: str, t: float, number: str, outcome: str, *,
                  client: str | None = None, employee: str | None = None,
                  command: str | None = None) -> None:
        if t > self.end:
            return
        routed = outcome == "routed"
        self.decisions.append((
            self.account_id, entry, f"{entry}-ivr", number, outcome,
            None if routed else outcome, client, employee,
            str(100 + int(employee)) if employee else None, command,
            200 if command else None, 1000 if command else None,
            self.rng.randint(250, 2500), datetime.fromtimestamp(t, UTC)))

    def _action(self, entry: str, t: float, action: str, *, pending: bool) -> None:
        if t > self.end:
            return
        at = datetime.fromtimestamp(t, UTC)
        if pending:
            self.actions.append((self.account_id, entry, action, "{}", "pending", 0, None,
                                 None, at, at, None))
        elif self.rng.random() < 0.01:
            self.actions.append((self.account_id, entry, action, "{}", "failed", 3, None,
                                 "400: refused", at, at, at + timedelta(seconds=5)))
        else:
            self.actions.append((self.account_id, entry, action, "{}", "done", 1,
                                 str(self.rng.randint(1, 10**7)), None, at, at,
                                 at + timedelta(seconds=1)))

    def call(self, i: int, start: float) -> None:
        """Call ``i``, its first notification at ``start`` (Unix seconds)."""
        rng = self.rng
        entry = _entry_id(i)
        line = LINES[0] if rng.random() < 0.8 else rng.choice(LINES[1:])
        r = rng.random()
        if r < 0.02:
            client: int | None = rng.randrange(_FREQUENT)
        elif r < 0.9:
            client = rng.randrange(self.clients)
        else:
            client = None  # a number nobody has
        number = (_client_number(client) if client is not None
                  else str(79990000000 + rng.randrange(10**7)))
        recent = start > self.end - 3600  # the last hour's actions are still pending
        employee = str(rng.randrange(1, _EMPLOYEES - 5))
        ext = str(100 + int(employee))
        kind = rng.random()
        t = start
        if kind < 0.8:  # incoming
            frm, to = {"number": number}, {"number": line, "line_number": line}
            self._leg(entry, t, 1, "ivr", "Appeared", "ivr", frm, to)
            self._leg(entry, t + 0.1, 2, "ivr", "Connected", "ivr", frm, to)
            if client is None:
                self._decision(entry, t + 0.002, number, "no_client")
            elif kind < 0.06:
                self._decision(entry, t + 0.002, number,
                               rng.choice(("busy", "no_extension", "no_active_responsible")),
                               client=str(client), employee=employee)
            elif kind < 0.1:  # hung up in the voice menu before the route
                self._decision(entry, t + 0.002, number, "ended", client=str(client))
                end = t + rng.uniform(2, 20)
                self._leg(entry, end, 3, "ivr", "Disconnected", "ivr", frm, to)
                self._summary(entry, end + 0.5, 1, frm, to, line, start, 0, 0)
                self._action(entry, end + 1, "create_deal", pending=recent)
                return
            command = None
            if client is not None and kind >= 0.06:
                command = f"{i:016x}"
                self._decision(entry, t + 0.002, number, "routed", client=str(client),
                               employee=employee, command=command)
                self._event("result", None, t + 0.3, {"command_id": command, "result": 1000})
            leg_from = {"number": "" if command else number, "taken_from_call_id": "ivr"}
            leg_to = {"extension": ext, "line_number": line}
            self._leg(entry, t + 0.2, 3, "ab0", "Appeared", "abonent", leg_from, leg_to, command)
            self._leg(entry, t + 0.25, 4, "ivr", "Disconnected", "ivr", frm, to)
            if rng.random() < 0.85:  # answered
                talk = t + rng.uniform(3, 15)
                self._leg(entry, talk, 5, "ab0", "Connected", "abonent", leg_from, leg_to,
                          command)
                end = talk + rng.uniform(20, 300)
                self._leg(entry, end, 6, "ab0", "Disconnected", "abonent", leg_from, leg_to,
                          command)
                self._summary(entry, end + 0.5, 1, frm, {"extension": ext, "number": line},
                              line, start, talk, 1)
                if rng.random() < 0.5:
                    rec = f"rec-{i}"
                    for state, at in (("Started", talk + 0.1), ("Completed", end + 1)):
                        self._event("recording", entry, at, {
                            "entry_id": entry, "recording_id": rec, "recording_state": state,
                            "timestamp": int(at)})
                self._action(entry, end + 1, "record_call", pending=recent)
                if client is None:
                    self._action(entry, end + 1, "create_client", pending=recent)
            else:  # offered, nobody answered
                end = t + rng.uniform(15, 40)
                self._leg(entry, end, 5, "ab0", "Disconnected", "abonent", leg_from, leg_to,
                          command)
                self._summary(entry, end + 0.5, 1, frm, {"extension": ext, "number": line},
                              line, start, 0, 0)
                self._action(entry, end + 1, "create_deal", pending=recent)
        else:  # an employee calls out
            frm, to = {"extension": ext, "number": line}, {"number": number}
            self._leg(entry, t, 1, "out", "Appeared", "abonent", frm, to)
            talk = 0.0
            if rng.random() < 0.7:
                talk = t + rng.uniform(5, 20)
                self._leg(entry, talk, 2, "out", "Connected", "abonent", frm, to)
            end = (talk or t) + rng.uniform(10, 200)
            self._leg(entry, end, 3, "out", "Disconnected", "abonent", frm, to)
            self._summary(entry, end + 0.5, 2, {"extension": ext}, to, line, start, talk,
                          1 if talk else 0)
            if talk:
                self._action(entry, end + 1, "record_call", pending=recent)


async def seed(target: asyncpg.Pool | str, calls: int, *, days: float = 120.0,
               clients: int = 20_000, seed_value: int = 20261130) -> Seeded:
    """Fill a database with a new account of ``calls`` calls over the last ``days``
    (migrations applied first). Chunks of calls go in on two connections at once when
    the pool lends two (one is made of a DSN). The journal's busy-legs trigger is
    disabled meanwhile (table owner needed): nothing should be serving on the database."""
    started = time.monotonic()
    pool = (await asyncpg.create_pool(target, min_size=2, max_size=2)
            if isinstance(target, str) else target)
    try:
        async with pool.acquire() as con:
            await apply_migrations(con)
            name = f"bench-pages-{secrets.token_hex(3)}"
            await add_account(con, name=name, mango_api_key=f"{name}-key",
                              mango_api_salt="bench", mango_api_url="http://127.0.0.1:1/vpbx/")
            account_id: int = await con.fetchval("SELECT id FROM accounts WHERE name = $1",
                                                 name)
            await _seed_copy(con, account_id, clients)
            await con.execute("ALTER TABLE call_events DISABLE TRIGGER journal_legs")
        try:
            counts = await _seed_calls(pool, account_id, calls, days, clients, seed_value)
        finally:
            await pool.execute("ALTER TABLE call_events ENABLE TRIGGER journal_legs")
        logger.info("seeded; vacuuming and analysing")
        async with pool.acquire() as con:
            for table in ("calls", "decisions", "crm_actions", "clients", "client_phones",
                          "employees"):
                await con.execute(f"VACUUM (ANALYZE) {table}")
            await con.execute("ANALYZE call_events")
            deep = int(calls * 0.1)  # 90 % of the way back from the newest
            deep_at = await con.fetchval(
                "SELECT started_at FROM calls WHERE account_id = $1 AND entry_id = $2",
                account_id, _entry_id(deep))
            assert deep_at is not None
    finally:
        if isinstance(target, str):
            await pool.close()
    return Seeded(account_id=account_id, account=name, timezone=TIMEZONE, calls=calls,
                  days=days, events=counts[0], decisions=counts[1], actions=counts[2],
                  clients=clients, seconds=round(time.monotonic() - started, 1),
                  frequent_number=_client_number(0), line=LINES[0],
                  entry_id=_entry_id(calls // 2),
                  deep_cursor=encode_cursor(deep_at, _entry_id(deep)))


async def _seed_copy(con: Conn, account_id: int, clients: int) -> None:
    """The CRM copy: employees (the last five unmatched, five set by hand) and clients."""
    unmatched, manual = _EMPLOYEES - 5, _EMPLOYEES - 10
    await con.copy_records_to_table(
        "employees", columns=("account_id", "crm_id", "name", "email", "extension",
                              "extension_manual"),
        records=[(account_id, str(k), f"Сотрудник {k}", f"e{k}@example.com",
                  None if k > unmatched else str(100 + k), manual < k <= unmatched)
                 for k in range(1, _EMPLOYEES + 1)])
    await con.copy_records_to_table(
        "clients", columns=("account_id", "crm_id", "name"),
        records=[(account_id, str(c), f"Клиент {c}") for c in range(clients)])
    await con.execute(
        """INSERT INTO client_phones (client_uid, account_id, phone_key, raw)
           SELECT uid, account_id, 79160000000 + crm_id::bigint * 37,
                  (79160000000 + crm_id::bigint * 37)::text
           FROM clients WHERE account_id = $1""", account_id)
    await con.execute(
        """INSERT INTO client_responsibles (client_uid, account_id, position, kind, ref_id)
           SELECT uid, account_id, 0, 'employee', (1 + crm_id::int % 50)::text
           FROM clients WHERE account_id = $1""", account_id)
    await con.execute(
        """INSERT INTO sync_state (account_id, last_success_at, full_finished_at,
                                   incr_finished_at, last_error, last_error_at)
           VALUES ($1, now() - interval '1 minute', now() - interval '20 hours',
                   now() - interval '1 minute', 'Megaplan: 503 Service Unavailable',
                   now() - interval '3 hours')""", account_id)


async def _seed_calls(pool: asyncpg.Pool, account_id: int, calls: int, days: float,
                      clients: int, seed_value: int) -> tuple[int, int, int]:
    """Chunks made here, copied by two workers (the server's work is most of it)."""
    rng = random.Random(seed_value)
    end = time.time() - 1
    span = days * 86400.0
    gap = span / max(calls, 1)
    totals = [0, 0, 0]
    chunks: asyncio.Queue[_Calls | None] = asyncio.Queue(maxsize=2)

    async def copier() -> None:
        while (made := await chunks.get()) is not None:
            async with pool.acquire() as con:
                await con.copy_records_to_table("call_events", columns=_EVENT_COLUMNS,
                                                records=made.events)
                await fold_all(con)  # the calls rows, as a serving replica folds them
                await con.copy_records_to_table("decisions", columns=_DECISION_COLUMNS,
                                                records=made.decisions)
                await con.copy_records_to_table("crm_actions", columns=_ACTION_COLUMNS,
                                                records=made.actions)

    workers = [asyncio.create_task(copier()) for _ in range(2)]

    async def put(made: _Calls | None) -> None:
        """Queued, unless a worker fails first (its error is raised)."""
        putting = asyncio.ensure_future(chunks.put(made))
        done, _ = await asyncio.wait([putting, *workers], return_when=asyncio.FIRST_COMPLETED)
        if putting not in done:
            putting.cancel()
            for w in done:
                w.result()
            raise RuntimeError("a seeding worker stopped")

    logged = time.monotonic()
    try:
        for first in range(0, calls, _CHUNK):
            made = _Calls(account_id, clients, end, rng)
            for i in range(first, min(first + _CHUNK, calls)):
                made.call(i, end - span + i * gap + rng.uniform(0, gap * 0.9))
            totals[0] += len(made.events)
            totals[1] += len(made.decisions)
            totals[2] += len(made.actions)
            await put(made)
            if time.monotonic() - logged > 10:
                logged = time.monotonic()
                logger.info("seeding: %d of %d calls made", first + _CHUNK, calls)
        for _ in workers:
            await put(None)
        await asyncio.gather(*workers)
        await fold_all(pool, wait=True)  # a worker's mark the other skipped
    finally:
        for w in workers:
            w.cancel()
    return totals[0], totals[1], totals[2]


# --- timing --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    name: str
    runs: int
    median_ms: float
    p95_ms: float
    max_ms: float
    budget_ms: float = BUDGET_MS
    note: str = ""

    @property
    def within_budget(self) -> bool:
        return self.p95_ms <= self.budget_ms


@dataclass(frozen=True, slots=True)
class PageQuery:
    name: str
    run: Callable[[asyncpg.Pool], Awaitable[object]]
    note: str = ""


async def time_it(name: str, run: Callable[[], Awaitable[object]], *, runs: int,
                  warmup: int = 3, note: str = "") -> Timing:
    """Median and 95th percentile (nearest rank) of ``runs`` awaits of ``run()``."""
    for _ in range(warmup):
        await run()
    took: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        await run()
        took.append((time.perf_counter() - t) * 1000)
    took.sort()
    return Timing(name=name, runs=runs, median_ms=round(percentile(took, 50), 2),
                  p95_ms=round(percentile(took, 95), 2), max_ms=round(took[-1], 2), note=note)


def page_queries(seeded: Seeded) -> list[PageQuery]:
    """Every query the admin pages make, as ``lookup`` answers them."""
    a, zone = seeded.account_id, seeded.timezone
    yesterday = datetime.now(ZoneInfo(zone)).date() - timedelta(days=1)

    async def first_page(pool: asyncpg.Pool) -> object:
        return await calls_page(pool, a, limit=50)

    async def deep_page(pool: asyncpg.Pool) -> object:
        return await calls_page(pool, a, limit=50, before=seeded.deep_cursor)

    async def search_client(pool: asyncpg.Pool) -> object:
        return await calls_page(pool, a, number=seeded.frequent_number, limit=50)

    async def search_line(pool: asyncpg.Pool) -> object:
        return await calls_page(pool, a, number=seeded.line, limit=50)

    async def search_deep(pool: asyncpg.Pool) -> object:
        return await calls_page(pool, a, number=seeded.line, limit=50,
                                before=seeded.deep_cursor)

    async def one_call(pool: asyncpg.Pool) -> object:
        found = await find_call(pool, a, seeded.entry_id)
        assert found is not None
        return found

    async def overview_today(pool: asyncpg.Pool) -> object:
        return await overview(pool, a, timezone=zone)

    async def overview_yesterday(pool: asyncpg.Pool) -> object:
        return await overview(pool, a, timezone=zone, day=yesterday)

    async def employees(pool: asyncpg.Pool) -> object:
        return await employee_extensions(pool, a)

    async def api_calls(pool: asyncpg.Pool) -> object:
        return await recent_calls(pool, a, number=None, limit=50)

    per_day = round(seeded.calls / seeded.days)
    return [
        PageQuery("calls: first page", first_page, "50 rows"),
        PageQuery("calls: deep page (cursor)", deep_page, "90 % back"),
        PageQuery("calls: search a client", search_client, "a frequent caller"),
        PageQuery("calls: search the line", search_line, "~80 % of calls"),
        PageQuery("calls: search, deep page", search_deep, "the line, 90 % back"),
        PageQuery("one call", one_call, "events, decision, actions"),
        PageQuery("overview: today", overview_today, "so far today"),
        PageQuery("overview: yesterday", overview_yesterday, f"a whole day, ~{per_day} calls"),
        PageQuery("employees", employees, f"{_EMPLOYEES} employees"),
        PageQuery("GET /api/calls (lookup)", api_calls, "50 calls with their events"),
    ]


async def time_pages(pool: asyncpg.Pool, seeded: Seeded, *, runs: int) -> list[Timing]:
    timings = []
    for q in page_queries(seeded):
        async def once(q: PageQuery = q) -> object:
            return await q.run(pool)

        timings.append(await time_it(q.name, once, runs=runs, note=q.note))
        logger.info("%s: median %.2f ms", q.name, timings[-1].median_ms)
    return timings


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalCost:
    """A journal statement of one shape with the calls trigger off and on: as
    ``write_journal`` sees it (µs, round trip included) and as the server times it
    (``EXPLAIN ANALYZE``: the statement, and the calls trigger's own part)."""

    shape: str
    events: int  # per statement
    statements: int  # timed per side
    off_median_us: float
    off_p95_us: float
    on_median_us: float
    on_p95_us: float
    server_off_us: float  # medians of the statement's execution on the server
    server_on_us: float
    trigger_us: float  # of which the calls trigger

    @property
    def added_median_us(self) -> float:
        return round(self.on_median_us - self.off_median_us, 1)


_SHAPES = (("one event", 1), ("10 new calls' first events", 10), ("10 whole calls", 70))


def _shaped(account_id: int, tag: str) -> list[list[list[JournalEntry]]]:
    """Per shape, the statements of one round: a call's seven notifications one by one;
    ten new calls' first ones in one; ten calls' every notification in one."""
    return [_journal_call(account_id, f"{tag}s"),
            [[_journal_call(account_id, f"{tag}n{k}")[0][0] for k in range(10)]],
            [[e for k in range(10) for s in _journal_call(account_id, f"{tag}w{k}")
              for e in s]]]


async def journal_cost(pool: asyncpg.Pool, account_id: int, *, rounds: int
                       ) -> list[JournalCost]:
    """``rounds`` rounds of every shape per side, the trigger off and on in turns of
    five rounds (the first round after a switch is not timed: the switch makes the
    statements plan again), then the server's own times of the same shapes."""
    took: dict[tuple[int, bool], list[float]] = {}
    serial = 0
    try:
        for turn in range(2 * -(-rounds // 4)):  # four timed rounds a turn
            on = turn % 2 == 1
            await pool.execute(f"ALTER TABLE call_events {'ENABLE' if on else 'DISABLE'}"
                               " TRIGGER journal_calls")
            for k in range(5):
                serial += 1
                for shape, statements in enumerate(_shaped(account_id, f"j{serial}-")):
                    for statement in statements:
                        t = time.perf_counter()
                        await write_journal(pool, statement)
                        if k:
                            took.setdefault((shape, on), []).append(
                                (time.perf_counter() - t) * 1e6)
        server: dict[tuple[int, bool], list[float]] = {}
        trigger: dict[int, list[float]] = {}
        for on in (False, True):
            await pool.execute(f"ALTER TABLE call_events {'ENABLE' if on else 'DISABLE'}"
                               " TRIGGER journal_calls")
            for _ in range(max(rounds // 2, 5)):
                serial += 1
                for shape, statements in enumerate(_shaped(account_id, f"x{serial}-")):
                    for statement in statements:
                        plan = orjson.loads(await pool.fetchval(
                            "EXPLAIN (ANALYZE, FORMAT JSON)" + JOURNAL_INSERT,
                            *journal_args(statement)))[0]
                        server.setdefault((shape, on), []).append(
                            plan["Execution Time"] * 1000)
                        if on:
                            trigger.setdefault(shape, []).append(1000 * sum(
                                t["Time"] for t in plan.get("Triggers", ())
                                if t["Trigger Name"] == "journal_calls"))
    finally:
        await pool.execute("ALTER TABLE call_events ENABLE TRIGGER journal_calls")

    def med(values: list[float]) -> float:
        return round(percentile(sorted(values), 50), 1)

    def p95(values: list[float]) -> float:
        return round(percentile(sorted(values), 95), 1)

    return [JournalCost(shape=name, events=events, statements=len(took[i, False]),
                        off_median_us=med(took[i, False]), off_p95_us=p95(took[i, False]),
                        on_median_us=med(took[i, True]), on_p95_us=p95(took[i, True]),
                        server_off_us=med(server[i, False]), server_on_us=med(server[i, True]),
                        trigger_us=med(trigger[i]))
            for i, (name, events) in enumerate(_SHAPES)]


def _journal_call(account_id: int, entry: str) -> list[list[JournalEntry]]:
    """An answered call's notifications, one statement each, as the webhooks write them."""
    caller, line = "79161234567", LINES[0]
    frm, to = {"number": caller}, {"number": line, "line_number": line}
    ab_from, ab_to = {"number": caller, "taken_from_call_id": "ivr"}, {"extension": "101"}
    legs = [("ivr", "Appeared", "ivr", frm, to), ("ivr", "Connected", "ivr", frm, to),
            ("ab0", "Appeared", "abonent", ab_from, ab_to),
            ("ivr", "Disconnected", "ivr", frm, to),
            ("ab0", "Connected", "abonent", ab_from, ab_to),
            ("ab0", "Disconnected", "abonent", ab_from, ab_to)]
    out = []
    for seq, (call_id, state, location, f, t) in enumerate(legs, 1):
        raw = orjson.dumps({"entry_id": entry, "call_id": call_id, "seq": seq,
                            "call_state": state, "location": location, "from": f,
                            "to": t}).decode()
        out.append([JournalEntry(account_id, "call", entry, call_id, seq, state, location, raw)])
    raw = orjson.dumps({"entry_id": entry, "call_direction": 1, "from": frm, "to": to,
                        "line_number": line, "entry_result": 1}).decode()
    out.append([JournalEntry(account_id, "summary", entry, None, None, None, None, raw)])
    return out


# --- the run -------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class PagesResult:
    machine: str
    seeded: Seeded
    timings: list[Timing]
    journal: list[JournalCost]
    http: list[Timing] = field(default_factory=list)  # the pages as a browser gets them
    sizes: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


async def run(*, calls: int, runs: int, days: float, journal_rounds: int,
              dsn: str | None = None, work_dir: Path | None = None) -> PagesResult:
    """Seed, time the pages and the journal's statements; on ``dsn``'s server in a
    database of its own, else on an embedded server in ``work_dir`` (a temporary one)."""
    started = time.monotonic()
    if dsn is not None:
        server, tune = dsn, False
    else:
        work = work_dir or Path(tempfile.mkdtemp(prefix="mango-pages-"))
        if work_dir is None:  # after the embedded server's own exit handler (see bench.outbox)
            atexit.register(shutil.rmtree, work, ignore_errors=True)
        from lookup.embedded import ensure_embedded

        server, tune = await asyncio.to_thread(ensure_embedded, work / "db", throwaway=True), True
    name = f"bench_pages_{os.getpid()}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        if tune:
            await _bulk_settings(admin, on=True)
    finally:
        await admin.close()
    db = _with_database(server, name)
    try:
        logger.info("seeding %d calls", calls)
        seeded = await seed(db, calls, days=days)
        logger.info("seeded in %.0f s: %d events, %d decisions, %d actions", seeded.seconds,
                    seeded.events, seeded.decisions, seeded.actions)
        if tune:
            admin = await asyncpg.connect(server)
            try:
                await _bulk_settings(admin, on=False)
            finally:
                await admin.close()
        pool = await asyncpg.create_pool(db, min_size=1, max_size=1)
        try:
            timings = await time_pages(pool, seeded, runs=runs)
            journal = await journal_cost(pool, seeded.account_id, rounds=journal_rounds)
            sizes = {r["t"]: r["size"] for r in await pool.fetch(
                """SELECT t, pg_size_pretty(pg_total_relation_size(t::regclass)) AS size
                   FROM unnest(ARRAY['call_events', 'calls', 'decisions', 'crm_actions']) t""")}
        finally:
            await pool.close()
        from bench.pages_http import time_http_pages  # it imports this module's timing

        http = await time_http_pages(db, seeded, runs=runs)
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()
    return PagesResult(machine=machine_description(), seeded=seeded, timings=timings,
                       journal=journal, http=http, sizes=sizes,
                       elapsed_s=round(time.monotonic() - started, 1))


async def _bulk_settings(con: asyncpg.Connection, *, on: bool) -> None:
    """Our own throwaway server only: a bulk load without fsync, back to defaults after."""
    settings = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
                "max_wal_size": "'8GB'", "checkpoint_timeout": "'30min'"}
    for name, value in settings.items():
        await con.execute(f"ALTER SYSTEM SET {name} = {value}" if on
                          else f"ALTER SYSTEM RESET {name}")
    await con.execute("SELECT pg_reload_conf()")
    if not on:
        await con.execute("CHECKPOINT")


def _with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def format_report(result: PagesResult) -> str:
    s = result.seeded
    lines = [
        f"machine: {result.machine}",
        f"seeded {s.calls:,} calls ({s.events:,} events, {s.decisions:,} decisions, "
        f"{s.actions:,} CRM actions, {s.clients:,} clients) in {s.seconds:.0f} s; "
        + ", ".join(f"{k} {v}" for k, v in result.sizes.items()),
        "",
        f"{'page query':<28} {'runs':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} "
        f"{'budget':>7}  {'':4} note",
    ]
    for t in result.timings:
        lines.append(f"{t.name:<28} {t.runs:>5} {t.median_ms:>10.2f} {t.p95_ms:>8.2f} "
                     f"{t.max_ms:>8.2f} {t.budget_ms:>7.0f}  "
                     f"{'ok' if t.within_budget else 'OVER':<4} {t.note}")
    lines += ["", f"{'page over HTTP (signed in)':<28} {'runs':>5} {'median ms':>10} "
                  f"{'p95 ms':>8} {'max ms':>8} {'budget':>7}  {'':4} note"]
    for t in result.http:
        lines.append(f"{t.name:<28} {t.runs:>5} {t.median_ms:>10.2f} {t.p95_ms:>8.2f} "
                     f"{t.max_ms:>8.2f} {t.budget_ms:>7.0f}  "
                     f"{'ok' if t.within_budget else 'OVER':<4} {t.note}")
    lines += ["", "journal statement, µs: write_journal (median, p95) with the calls trigger "
                  "off and on; the server's execution (median) off and on, and the trigger's",
              f"{'shape':<27} {'n':>5} {'off':>7} {'p95':>7} {'on':>7} {'p95':>7} {'added':>6}"
              f"  {'srv off':>7} {'srv on':>7} {'trigger':>7}"]
    for j in result.journal:
        lines.append(f"{j.shape:<27} {j.statements:>5} {j.off_median_us:>7.0f} "
                     f"{j.off_p95_us:>7.0f} {j.on_median_us:>7.0f} {j.on_p95_us:>7.0f} "
                     f"{j.added_median_us:>6.0f}  {j.server_off_us:>7.0f} "
                     f"{j.server_on_us:>7.0f} {j.trigger_us:>7.0f}")
    over = [t.name for t in [*result.timings, *result.http] if not t.within_budget]
    lines += ["", f"every page within {BUDGET_MS:.0f} ms at p95" if not over else
              f"OVER BUDGET: {', '.join(over)}", f"run: {result.elapsed_s:.0f} s"]
    return "\n".join(lines)


def _to_json(result: PagesResult) -> dict[str, Any]:
    out = asdict(result)
    out["journal"] = [{**asdict(j), "added_median_us": j.added_median_us}
                      for j in result.journal]
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.pages",
                                description="The admin pages' queries on a large journal.")
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--days", type=float, default=120.0, help="the history the calls span")
    p.add_argument("--runs", type=int, default=30, help="timed runs per query")
    p.add_argument("--journal-rounds", type=int, default=100,
                   help="rounds of journal statements timed per side (a call's seven, "
                        "ten new calls, ten whole calls)")
    p.add_argument("--out", type=Path, default=_OUT, help="output directory")
    a = p.parse_args(argv)
    if a.calls < 100 or a.runs < 1 or a.days <= 0 or a.journal_rounds < 4:
        p.error("at least 100 calls, 1 run, 4 journal rounds and a positive span")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    start_command()
    result = asyncio.run(run(calls=a.calls, runs=a.runs, days=a.days,
                             journal_rounds=a.journal_rounds,
                             dsn=os.environ.get("DATABASE_URL") or None))
    sys.stdout.write(format_report(result) + "\n")
    (output_folder(a.out) / "pages.json").write_bytes(orjson.dumps(
        _to_json(result), option=orjson.OPT_INDENT_2, default=str) + b"\n")
    logger.info("wrote %s", a.out / "pages.json")
    return 0 if all(t.within_budget for t in [*result.timings, *result.http]) else 1


if __name__ == "__main__":
    sys.exit(main())

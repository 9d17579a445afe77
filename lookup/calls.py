"""What happened to a call, read from the journal and the decision record.

A call is its events in ``seq`` order, the routing decision (with the PBX's
later ``result/route`` as ``final_result``) and the CRM actions planned for it
(``lookup.outbox``), with their state. Values are plain JSON but for the
timestamps, which stay ``datetime``.

Lists of calls (the API's recent calls, the calls page, the overview's hours)
read the ``calls`` table, one row per call, folded from the journal's events
(migrations 0008 and 0013): grouping the journal's events per call is far too
slow once it holds millions. The folding is done after the PBX's 200, by each
serving replica's folder (``router.calls_folder``) and by the lists themselves
before they read (``fold_all``, up to the newest mark there was), so a list
shows every call journaled before it was asked for. They are newest first by
the call's start (its first notification's arrival), which never moves, so a
page's cursor is exact.
A number is searched by its canonical key (E.164 digits, as
``lookup.phones.phone_key`` gives it), matched exactly against the call's
outside party and its line: a partial number is not searched, since a
suffix that many calls share cannot be found fast in a million of them.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
import orjson

from lookup.conn import Conn
from lookup.outbox import actions_for_entries

__all__ = [
    "SILENCE_S",
    "ActionCounts",
    "BadCursor",
    "CallRow",
    "CallsPage",
    "Direction",
    "HourCounts",
    "Outcome",
    "RowDecision",
    "calls_by_hour",
    "calls_page",
    "calls_with_open_legs",
    "decode_cursor",
    "encode_cursor",
    "find_call",
    "fold_all",
    "fold_pending",
    "recent_calls",
]

logger = logging.getLogger(__name__)

SILENCE_S = 12 * 3600.0
"""A call with no summary and a leg still open that the PBX has said nothing of this
long is over: its ``Disconnected`` was lost (``automation.call_model.OPEN_SILENCE``: the
automation finalises it then too). Not sooner: a conversation, or a wait in a queue,
sends nothing while it lasts. A call whose legs all hung up is over at once."""

Direction = Literal["in", "out", "internal", "unknown"]
Outcome = Literal["answered", "missed", "in_progress"]

_NEWEST = (datetime(9999, 12, 31, tzinfo=UTC), "")  # a cursor before every call

FOLD_BATCHES = 200
"""Journal statements folded per transaction (a few thousand events under load)."""

# A call's row as the lists read it: direction and outcome are decided here, once.
# {silence}: the parameter that holds SILENCE_S.
_ROW = """c.entry_id, c.started_at, c.last_at, c.number, c.line,
       coalesce(c.leg_extension, c.summary_extension) AS extension,
       coalesce(c.summary_direction, c.leg_direction, 'unknown') AS direction,
       CASE WHEN c.summary_result IS NOT NULL THEN c.summary_result = 1
            ELSE c.connected END AS answered,
       c.has_summary OR (cardinality(c.legs) > 0 AND c.legs <@ c.legs_closed)
           OR c.last_at < now() - make_interval(secs => {silence}) AS ended"""

# One page of calls newest first, before a cursor ($2, $3): $1 account, $4 how many.
_PAGE = """SELECT * FROM calls
           WHERE account_id = $1 AND (started_at, entry_id) < ($2::timestamptz, $3::text)
           ORDER BY started_at DESC, entry_id DESC LIMIT $4"""

# The same, of the calls whose outside party or line is {n}: two index scans that
# each stop after $4 rows.
_PAGE_BY_NUMBER = """(SELECT * FROM calls
            WHERE account_id = $1 AND number = {n}
              AND (started_at, entry_id) < ($2::timestamptz, $3::text)
            ORDER BY started_at DESC, entry_id DESC LIMIT $4)
           UNION ALL
           (SELECT * FROM calls
            WHERE account_id = $1 AND line = {n} AND number IS DISTINCT FROM {n}
              AND (started_at, entry_id) < ($2::timestamptz, $3::text)
            ORDER BY started_at DESC, entry_id DESC LIMIT $4)
           ORDER BY started_at DESC, entry_id DESC LIMIT $4"""

# The first decision of a call, a routed one before any other (a second replica
# records the same trigger as claimed elsewhere, and may do so first).
_DECISION = """SELECT d.outcome, d.reason, d.client_id, d.employee_id, d.extension, d.via,
                  d.latency_us, d.pbx_result
           FROM decisions d WHERE d.account_id = c.account_id AND d.entry_id = c.entry_id
           ORDER BY d.outcome <> 'routed', d.id LIMIT 1"""

_LIST = f"""
WITH c AS ({{page}})
SELECT {_ROW.format(silence="$5")},
       d.outcome, d.reason, d.client_id AS decided_client, d.employee_id, d.extension
           AS decided_extension, d.via, d.latency_us, d.pbx_result,
       e.name AS employee_name, k.crm_id AS client_id, k.name AS client_name,
       a.pending, a.done, a.failed, a.dry_run
FROM c
LEFT JOIN LATERAL ({_DECISION}) d ON true
LEFT JOIN employees e ON e.account_id = c.account_id AND e.crm_id = d.employee_id
LEFT JOIN LATERAL (
    -- the client routing found; else the copy's first client of the number
    (SELECT k.crm_id, k.name FROM clients k
     WHERE k.account_id = c.account_id AND k.crm_id = d.client_id)
    UNION ALL
    (SELECT k.crm_id, k.name FROM client_phones p
     JOIN clients k ON k.uid = p.client_uid AND NOT k.dropped
     WHERE p.account_id = c.account_id
       AND p.phone_key = CASE WHEN c.number ~ '^[0-9]+$' AND length(c.number) <= 18
                              THEN c.number::bigint END
     ORDER BY k.crm_order NULLS LAST, k.crm_id LIMIT 1)
    LIMIT 1) k ON true
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE x.state = 'pending') AS pending,
           count(*) FILTER (WHERE x.state = 'done') AS done,
           count(*) FILTER (WHERE x.state = 'failed') AS failed,
           count(*) FILTER (WHERE x.state = 'dry_run') AS dry_run
    FROM crm_actions x WHERE x.account_id = c.account_id AND x.entry_id = c.entry_id) a ON true
ORDER BY c.started_at DESC, c.entry_id DESC"""

_LIST_ALL = _LIST.format(page=_PAGE)
_LIST_BY_NUMBER = _LIST.format(page=_PAGE_BY_NUMBER.format(n="$6"))
_ENTRIES_ALL = f"SELECT entry_id FROM ({_PAGE}) c ORDER BY started_at DESC, entry_id DESC"
_ENTRIES_BY_NUMBER = (f"SELECT entry_id FROM ({_PAGE_BY_NUMBER.format(n='$5')}) c"
                      " ORDER BY started_at DESC, entry_id DESC")

_BY_HOUR = f"""
SELECT extract(hour FROM c.started_at AT TIME ZONE $5)::int AS hour, d.outcome,
       count(*) AS calls,
       count(*) FILTER (WHERE c.ended AND c.answered) AS answered,
       count(*) FILTER (WHERE c.ended AND NOT c.answered AND c.direction = 'in') AS missed,
       count(*) FILTER (WHERE NOT c.ended) AS in_progress
FROM (SELECT c.account_id, {_ROW.format(silence="$4")} FROM calls c
      WHERE c.account_id = $1 AND c.started_at >= $2 AND c.started_at < $3) c
LEFT JOIN LATERAL ({_DECISION}) d ON true
GROUP BY 1, 2 ORDER BY 1, 3 DESC"""


class BadCursor(ValueError):
    """A page's cursor that no page of this module gave."""


@dataclass(frozen=True, slots=True)
class ActionCounts:
    """What the automation did for a call: its CRM actions by state."""

    pending: int = 0
    done: int = 0
    failed: int = 0
    dry_run: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.done + self.failed + self.dry_run


@dataclass(frozen=True, slots=True, kw_only=True)
class RowDecision:
    """How routing decided the call: routed to whom, or why not (``outcome``)."""

    outcome: str
    routed: bool
    reason: str | None
    employee_id: str | None
    employee_name: str | None  # None when the copy has no such employee (any more)
    extension: str | None
    via: str | None
    latency_us: int
    pbx_result: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRow:
    """One line of the calls page."""

    entry_id: str
    started_at: datetime
    last_at: datetime
    direction: Direction
    number: str | None  # the outside party: who called in, or who was called out
    line: str | None  # the company line
    extension: str | None  # the employee who called (outgoing, internal)
    answered: bool
    outcome: Outcome
    client_id: str | None  # the CRM's, when the number is a client's
    client_name: str | None
    decision: RowDecision | None  # None: routing never decided it (outgoing, routing off)
    actions: ActionCounts

    @property
    def caller(self) -> str | None:
        """Who called: the outside number, or the employee's extension."""
        return self.number if self.direction in ("in", "unknown") else self.extension

    @property
    def called(self) -> str | None:
        """Whom: the company line for a call in, the number called out."""
        return self.line if self.direction in ("in", "unknown") else self.number


@dataclass(frozen=True, slots=True)
class CallsPage:
    calls: list[CallRow]
    older: str | None  # the cursor of the next page (older calls); None on the last one


@dataclass(slots=True, kw_only=True)
class HourCounts:
    """One hour of a day's calls (by their start, in the account's time zone).

    ``routed``, ``not_routed`` and ``undecided`` split the calls by their routing;
    ``answered``, ``missed`` and ``in_progress`` by how they went, on their own
    axis (a routed call can be missed). ``missed`` counts incoming calls only.
    """

    hour: int
    calls: int = 0
    routed: int = 0
    not_routed: dict[str, int] = field(default_factory=dict)  # why (the outcome) -> calls
    undecided: int = 0  # no decision: outgoing, internal, routing off
    answered: int = 0
    missed: int = 0
    in_progress: int = 0


def encode_cursor(started_at: datetime, entry_id: str) -> str:
    """The opaque cursor of the calls older than this one (URL-safe)."""
    micros = (started_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    raw = f"{micros}:{entry_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, entry_id = raw.split(":", 1)
        if not (micros.lstrip("-").isascii() and micros.lstrip("-").isdigit()) or len(micros) > 20:
            raise ValueError(micros)
        started_at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise BadCursor(f"not a calls cursor: {cursor[:40]!r}") from None
    if "\x00" in entry_id:  # PostgreSQL text holds no NUL
        raise BadCursor("not a calls cursor")
    return started_at, entry_id


async def calls_with_open_legs(con: Conn | asyncpg.Pool, *, within_s: float,
                               quiet_s: float) -> list[tuple[int, str, float]]:
    """Calls last heard of between ``within_s`` and ``quiet_s`` seconds ago that have
    neither a summary nor every leg hung up, every account: (account id, entry, when the
    last came in Unix seconds). A conversation or a wait in a queue, or a call whose
    ``Disconnected`` was lost: a starting planner looks at them again."""
    await _fold_all(con)
    rows = await con.fetch(
        """SELECT account_id, entry_id, extract(epoch FROM last_at)::float8 AS last
           FROM calls
           WHERE last_at > now() - make_interval(secs => $1)
             AND last_at < now() - make_interval(secs => $2)
             AND NOT has_summary AND NOT (cardinality(legs) > 0 AND legs <@ legs_closed)""",
        within_s, quiet_s)
    return [(r["account_id"], r["entry_id"], r["last"]) for r in rows]


async def fold_pending(con: Conn | asyncpg.Pool, *, wait: bool = False,
                       batches: int = FOLD_BATCHES, up_to: int | None = None) -> int:
    """Fold the journal's events that are not in their ``calls`` rows yet, up to
    ``batches`` journal statements' worth (none marked after ``up_to``); how many
    statements were folded.

    Any session may fold; each statement's events are folded once. ``wait``: the
    statements another session is folding now are waited for (and are then in the
    rows), so a read after it sees every call journaled before; without it they are
    left to that session. Outside a transaction: in a REPEATABLE READ one, waiting
    for another fold fails with a serialization error.
    """
    taken: int = await con.fetchval("SELECT fold_pending_calls($1, $2, $3)",
                                    batches, not wait, up_to)
    return taken


async def fold_all(con: Conn | asyncpg.Pool, *, wait: bool = False,
                   up_to: int | None = None) -> int:
    """``fold_pending`` until nothing is left (none marked after ``up_to``), a
    transaction per ``FOLD_BATCHES`` statements; how many statements were folded."""
    folded = 0
    while (taken := await fold_pending(con, wait=wait, up_to=up_to)) == FOLD_BATCHES:
        folded += taken
    return folded + taken


async def _fold_all(con: Conn | asyncpg.Pool) -> None:
    """Before a list reads: every call journaled so far is in the rows (not those
    journaled meanwhile, so that it ends however fast the journal goes on)."""
    last: int | None = await con.fetchval("SELECT max(id) FROM calls_pending")
    if last is not None:
        await fold_all(con, wait=True, up_to=last)


async def calls_page(con: Conn | asyncpg.Pool, account_id: int, *, number: str | None = None,
                     before: str | None = None, limit: int = 50) -> CallsPage:
    """The account's calls newest first, ``limit`` of them, older than the cursor
    ``before`` (a page's ``older``); only those of ``number`` (a phone key) if given.

    Raises ``BadCursor`` for a cursor this function did not give.
    """
    at, entry = _NEWEST if before is None else decode_cursor(before)
    await _fold_all(con)
    args: list[Any] = [account_id, at, entry, limit + 1, SILENCE_S]
    if number is None:
        rows = await con.fetch(_LIST_ALL, *args)
    else:
        rows = await con.fetch(_LIST_BY_NUMBER, *args, number)
    calls = [_row(r) for r in rows[:limit]]
    older = (encode_cursor(calls[-1].started_at, calls[-1].entry_id)
             if len(rows) > limit else None)
    return CallsPage(calls, older)


def _row(r: asyncpg.Record) -> CallRow:
    decision = None
    if r["outcome"] is not None:
        decision = RowDecision(
            outcome=r["outcome"], routed=r["outcome"] == "routed", reason=r["reason"],
            employee_id=r["employee_id"], employee_name=r["employee_name"],
            extension=r["decided_extension"], via=r["via"], latency_us=r["latency_us"],
            pbx_result=r["pbx_result"])
    answered: bool = r["answered"]
    outcome: Outcome = ("in_progress" if not r["ended"] else
                        "answered" if answered else "missed")
    return CallRow(
        entry_id=r["entry_id"], started_at=r["started_at"], last_at=r["last_at"],
        direction=r["direction"], number=r["number"], line=r["line"],
        extension=r["extension"], answered=answered, outcome=outcome,
        client_id=r["client_id"], client_name=r["client_name"], decision=decision,
        actions=ActionCounts(r["pending"], r["done"], r["failed"], r["dry_run"]))


async def calls_by_hour(con: Conn | asyncpg.Pool, account_id: int, start: datetime,
                        end: datetime, timezone: str) -> list[HourCounts]:
    """The calls that started in [start, end), per hour of ``timezone``'s clock
    (0-23; a day has 24 whatever its length: a repeated hour counts twice)."""
    hours = [HourCounts(hour=h) for h in range(24)]
    await _fold_all(con)
    for r in await con.fetch(_BY_HOUR, account_id, start, end, SILENCE_S, timezone):
        h, outcome, calls = hours[r["hour"]], r["outcome"], r["calls"]
        h.calls += calls
        if outcome is None:
            h.undecided += calls
        elif outcome == "routed":
            h.routed += calls
        else:
            h.not_routed[outcome] = h.not_routed.get(outcome, 0) + calls
        h.answered += r["answered"]
        h.missed += r["missed"]
        h.in_progress += r["in_progress"]
    return hours


async def recent_calls(con: Conn | asyncpg.Pool, account_id: int, *, number: str | None,
                       limit: int) -> list[dict[str, Any]]:
    """The account's latest ``limit`` calls, newest first by their start; only
    ``number``'s if given (a phone key, matched against the outside party and the
    line), each as ``find_call`` gives it."""
    await _fold_all(con)
    args: list[Any] = [account_id, *_NEWEST, limit]
    if number is None:
        rows = await con.fetch(_ENTRIES_ALL, *args)
    else:
        rows = await con.fetch(_ENTRIES_BY_NUMBER, *args, number)
    entries: list[str] = [r["entry_id"] for r in rows]
    calls = await _calls(con, account_id, entries)
    return [calls[e] for e in entries]


async def find_call(con: Conn | asyncpg.Pool, account_id: int, entry_id: str
                    ) -> dict[str, Any] | None:
    """One call of the account; None when neither an event nor a decision names it."""
    if "\x00" in entry_id:  # PostgreSQL text holds no NUL (it would refuse the query): none
        return None
    found = (await _calls(con, account_id, [entry_id]))[entry_id]
    if not found["events"] and found["decision"] is None:
        return None
    return found


async def _calls(con: Conn | asyncpg.Pool, account_id: int, entries: Sequence[str]
                 ) -> dict[str, dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {
        e: {"entry_id": e, "events": [], "decision": None, "crm_actions": []} for e in entries}
    if not entries:
        return calls
    for r in await con.fetch(
        """SELECT entry_id, kind, seq, call_id, call_state, location, payload, received_at
           FROM call_events WHERE account_id = $1 AND entry_id = ANY($2::text[])
           ORDER BY entry_id, seq NULLS LAST, id""", account_id, list(entries)):
        calls[r["entry_id"]]["events"].append({
            "kind": r["kind"], "seq": r["seq"], "call_id": r["call_id"],
            "call_state": r["call_state"], "location": r["location"],
            "received_at": r["received_at"], "payload": orjson.loads(r["payload"])})
    for r in await con.fetch(
        """SELECT d.*, (SELECT (ev.payload->>'result')::bigint FROM call_events ev
                        WHERE ev.account_id = d.account_id AND ev.kind = 'result'
                          AND ev.payload->>'command_id' = d.command_id
                        ORDER BY ev.id DESC LIMIT 1) AS final_result,
                  e.name AS employee_name, k.name AS client_name
           FROM decisions d
           LEFT JOIN employees e ON e.account_id = d.account_id AND e.crm_id = d.employee_id
           LEFT JOIN clients k ON k.account_id = d.account_id AND k.crm_id = d.client_id
           WHERE d.account_id = $1 AND d.entry_id = ANY($2::text[])
           ORDER BY d.outcome <> 'routed', d.id""", account_id, list(entries)):
        if calls[r["entry_id"]]["decision"] is not None:
            continue  # the call's is the routed one, else the first; others are repeats
        calls[r["entry_id"]]["decision"] = {
            "outcome": r["outcome"], "routed": r["outcome"] == "routed",
            "reason": r["reason"], "number": r["number"], "client_id": r["client_id"],
            "client_name": r["client_name"], "employee_id": r["employee_id"],
            "employee_name": r["employee_name"], "extension": r["extension"], "via": r["via"],
            "command_id": r["command_id"], "pbx_status": r["pbx_status"],
            "pbx_result": r["pbx_result"], "final_result": r["final_result"],
            "latency_us": r["latency_us"], "decided_at": r["decided_at"]}
    for entry, actions in (await actions_for_entries(con, account_id, entries)).items():
        calls[entry]["crm_actions"] = actions
    return calls

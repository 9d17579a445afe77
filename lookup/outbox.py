"""The CRM outbox (``crm_actions``): what the call automation plans, and its progress.

Planning is idempotent: an action is unique per (account, call, action,
subject), so a call planned twice, on one replica or two, plans nothing new.
A worker claims due actions by pushing their ``due_at`` one lease ahead (rows
locked with ``SKIP LOCKED`` while it does), so a worker that dies gives them
back when the lease runs out; an action whose client is made by another one
waits until that one is no longer pending. It waits *behind* it in the due
order: a backoff moves the action's pending dependents (and theirs) to its new
time, and its end (done or failed) makes its direct dependents due at once. Left
in front, the dependents of creates backed off through a CRM outage were read and
skipped by every claim: 12.6-12.9 ms a claim behind 10,000 calls, 74-78 ms behind
50,000 (0.5 and 1.2-1.4 ms now).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from lookup.conn import Conn

__all__ = [
    "CLAIM_DUE",
    "ActionRow",
    "NewAction",
    "actions_for_entries",
    "claim_due",
    "complete",
    "entries_creating_clients",
    "fail",
    "give_back",
    "lock_number",
    "new_number_action",
    "number_created",
    "outbox_depth",
    "pending_actions",
    "plan",
    "plan_many",
    "release_leases",
    "remember_new_number",
    "retry_later",
    "taken_crm_ids",
]

STATES = ("pending", "done", "failed", "dry_run")


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAction:
    entry_id: str
    action: str
    payload: dict[str, Any]
    subject: str = ""
    depends_on: int | None = None
    dry_run: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRow:
    """A claimed action, with what its dependency made (the client's CRM id)."""

    id: int
    account_id: int
    entry_id: str
    action: str
    subject: str
    payload: dict[str, Any]
    attempts: int  # this one included
    uncertain: bool  # an earlier attempt may have landed
    depends_on: int | None
    dependency_state: str | None
    dependency_crm_id: str | None


async def plan(con: Conn, account_id: int, action: NewAction) -> tuple[int, bool]:
    """Insert the action unless the call already has it: (its id, whether it is new).

    One that waits for an action backed off is due with it (not one claimed now: its
    end makes its dependents due, and one planned meanwhile would miss that). One that
    waits for a dry run's action is a dry run too (``dry_run`` was turned off during
    the call: the client it would go on was never made, so it is not a failure)."""
    found: int | None = await con.fetchval(
        """INSERT INTO crm_actions (account_id, entry_id, action, subject, payload, depends_on,
                                    state, due_at)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6,
                   CASE WHEN $7 OR EXISTS (SELECT 1 FROM crm_actions
                                           WHERE id = $6 AND state = 'dry_run')
                        THEN 'dry_run' ELSE 'pending' END,
                   greatest(now(), (SELECT due_at FROM crm_actions
                                    WHERE id = $6 AND state = 'pending'
                                      AND leased_at IS NULL)))
           ON CONFLICT (account_id, entry_id, action, subject) DO NOTHING
           RETURNING id""",
        account_id, action.entry_id, action.action, action.subject,
        orjson.dumps(action.payload).decode(), action.depends_on, action.dry_run)
    if found is not None:
        return found, True
    found = await con.fetchval(
        """SELECT id FROM crm_actions
           WHERE account_id = $1 AND entry_id = $2 AND action = $3 AND subject = $4""",
        account_id, action.entry_id, action.action, action.subject)
    assert found is not None
    return found, False


async def plan_many(con: Conn, account_id: int, actions: Sequence[NewAction]) -> list[str]:
    """Insert actions that wait on nothing, in one statement; the kinds that were new."""
    rows = await con.fetch(
        """INSERT INTO crm_actions (account_id, entry_id, action, subject, payload, state)
           SELECT $1, e, a, s, p::jsonb, st
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                AS t(e, a, s, p, st)
           ON CONFLICT (account_id, entry_id, action, subject) DO NOTHING
           RETURNING action""",
        account_id, [a.entry_id for a in actions], [a.action for a in actions],
        [a.subject for a in actions], [orjson.dumps(a.payload).decode() for a in actions],
        ["dry_run" if a.dry_run else "pending" for a in actions])
    return [r["action"] for r in rows]


async def entries_creating_clients(con: Conn, account_id: int, entries: Sequence[str]
                                   ) -> dict[str, str | None]:
    """Which of these calls planned a client of their own (their number was new then),
    with the responsible it was planned with."""
    rows = await con.fetch(
        """SELECT entry_id, payload->>'responsible_id' AS responsible FROM crm_actions
           WHERE account_id = $1 AND entry_id = ANY($2::text[]) AND action = 'create_client'""",
        account_id, list(entries))
    return {r["entry_id"]: r["responsible"] for r in rows}


async def lock_number(con: Conn, account_id: int, phone_key: int) -> None:
    """Serialise planning for one number until the transaction ends (any replica)."""
    await con.execute("SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
                      account_id, str(phone_key))


async def new_number_action(con: Conn, account_id: int, phone_key: int
                            ) -> tuple[int, str, dict[str, Any]] | None:
    """The create_client still to be applied for a number no client has: (its id, its
    call, its payload). One that is done has put its client in the copy, where routing
    and planning find it; one that failed makes no client to wait for."""
    row = await con.fetchrow(
        """SELECT a.id, a.entry_id, a.payload FROM crm_new_numbers n
           JOIN crm_actions a ON a.id = n.action_id
           WHERE n.account_id = $1 AND n.phone_key = $2 AND a.state = 'pending'""",
        account_id, phone_key)
    return None if row is None else (row["id"], row["entry_id"], orjson.loads(row["payload"]))


async def number_created(con: Conn, account_id: int, phone_key: int
                         ) -> tuple[str, datetime] | None:
    """The call whose action made (or makes) the client of this once-new number, and when
    that was planned."""
    row = await con.fetchrow(
        """SELECT a.entry_id, a.created_at FROM crm_new_numbers n
           JOIN crm_actions a ON a.id = n.action_id
           WHERE n.account_id = $1 AND n.phone_key = $2""", account_id, phone_key)
    return None if row is None else (row["entry_id"], row["created_at"])


async def remember_new_number(con: Conn, account_id: int, phone_key: int,
                              action_id: int) -> None:
    """The number's client is made by ``action_id`` (one that failed for good is replaced)."""
    await con.execute(
        """INSERT INTO crm_new_numbers (account_id, phone_key, action_id) VALUES ($1, $2, $3)
           ON CONFLICT (account_id, phone_key) DO UPDATE SET action_id = EXCLUDED.action_id""",
        account_id, phone_key, action_id)


CLAIM_DUE = """
WITH due AS (
    SELECT c.id, d.state AS dep_state, d.crm_id AS dep_crm_id
    FROM crm_actions c LEFT JOIN crm_actions d ON d.id = c.depends_on
    WHERE c.account_id = $1 AND c.state = 'pending' AND c.due_at <= now()
      AND (c.depends_on IS NULL OR d.state <> 'pending')
      AND c.id <> ALL($4::bigint[])  -- the worker's own, still under way
    ORDER BY c.due_at, c.id
    LIMIT $2
    FOR UPDATE OF c SKIP LOCKED
), claimed AS (
    UPDATE crm_actions a
    SET due_at = now() + $3 * interval '1 second', attempts = a.attempts + 1,
        leased_at = now(),
        -- a create claimed before may have landed, whatever became of its worker
        uncertain = a.uncertain OR (a.attempts > 0
                                    AND a.action IN ('create_client', 'create_deal'))
    -- by the key: joined to the CTE, a generic plan (asyncpg prepares statements; it
    -- knows no LIMIT) hashed the whole table, 25 ms a claim against 0.8
    WHERE a.id = ANY(ARRAY(SELECT id FROM due))
    RETURNING a.id, a.account_id, a.entry_id, a.action, a.subject, a.payload, a.attempts,
              a.uncertain, a.depends_on
)
SELECT claimed.*, due.dep_state, due.dep_crm_id FROM claimed JOIN due USING (id)
"""
"""``claim_due``'s statement (account, limit, lease seconds, ids under way): public for
the test of its plan."""


async def claim_due(con: Conn, account_id: int, *, limit: int, lease_s: float,
                    under_way: Sequence[int] = ()) -> list[ActionRow]:
    """Due actions, leased for ``lease_s``. ``under_way``: the caller's actions still
    being tried, never claimed again by it, even once their lease has run out (a slow
    CRM, a long Retry-After): two tries of one create at once would make it twice."""
    rows = await con.fetch(CLAIM_DUE, account_id, limit, lease_s, list(under_way))
    return [ActionRow(id=r["id"], account_id=r["account_id"], entry_id=r["entry_id"],
                      action=r["action"], subject=r["subject"],
                      payload=orjson.loads(r["payload"]), attempts=r["attempts"],
                      uncertain=r["uncertain"], depends_on=r["depends_on"],
                      dependency_state=r["dep_state"], dependency_crm_id=r["dep_crm_id"])
            for r in sorted(rows, key=lambda r: r["id"])]


async def taken_crm_ids(con: Conn, account_id: int, action: str, crm_ids: Sequence[str], *,
                        other_than: int) -> set[str]:
    """Which of these CRM objects other actions of this kind made (or found) already."""
    rows = await con.fetch(
        """SELECT crm_id FROM crm_actions
           WHERE account_id = $1 AND action = $2 AND crm_id = ANY($3::text[]) AND id <> $4""",
        account_id, action, list(crm_ids), other_than)
    return {r["crm_id"] for r in rows}


async def release_leases(con: Conn, account_id: int, *, older_than_s: float) -> None:
    """A new worker holds the account's lock: claims of an earlier one made at least
    ``older_than_s`` ago are given back (backoffs stay as they are)."""
    await con.execute(
        """UPDATE crm_actions SET due_at = now(), leased_at = NULL
           WHERE account_id = $1 AND state = 'pending'
             AND leased_at < now() - $2 * interval '1 second'""", account_id, older_than_s)


async def give_back(con: Conn | asyncpg.Pool, claims: Sequence[tuple[int, int]], *,
                    after_s: float) -> None:
    """Claims (action id, its attempts when claimed) a stopping worker did not finish
    are due again ``after_s`` from now, not when their leases run out; one claimed again
    since, by another worker, is left to it. (A claimed create is checked for before it
    is made again, as after any claim.)"""
    await con.execute(
        """UPDATE crm_actions a
           SET due_at = now() + $3 * interval '1 second', leased_at = NULL
           FROM unnest($1::bigint[], $2::int[]) AS t(id, attempts)
           WHERE a.id = t.id AND a.attempts = t.attempts AND a.state = 'pending'""",
        [c[0] for c in claims], [c[1] for c in claims], after_s)


# An action that is no longer pending: its dependents may go now (they were moved
# behind its backoffs; see the module's docstring).
_DEPENDENTS_DUE = """
    UPDATE crm_actions AS c SET due_at = now()
    WHERE c.depends_on = ANY(ARRAY(SELECT id FROM ended))  -- by the dependency's index
      AND c.state = 'pending' AND c.due_at > now()
"""


async def complete(con: Conn, action_id: int, *, crm_id: str | None,
                   note: str | None = None) -> None:
    await con.execute(
        """WITH ended AS (
               UPDATE crm_actions SET state = 'done', crm_id = $2, note = $3,
                                      last_error = NULL, done_at = now(), leased_at = NULL
               WHERE id = $1 AND state = 'pending' RETURNING id)""" + _DEPENDENTS_DUE,
        action_id, crm_id, note)


async def retry_later(con: Conn, action_id: int, *, error: str, delay_s: float,
                      uncertain: bool) -> None:
    """Due again in ``delay_s``, and so, at the earliest, is every pending action that
    waits for it, directly or not."""
    await con.execute(
        """WITH RECURSIVE moved AS (
               UPDATE crm_actions SET due_at = now() + $3 * interval '1 second',
                                      last_error = $2, uncertain = uncertain OR $4,
                                      leased_at = NULL
               WHERE id = $1 AND state = 'pending' RETURNING id, due_at
           ), waiting AS (
               SELECT c.id FROM crm_actions AS c JOIN moved ON c.depends_on = moved.id
               WHERE c.state = 'pending'
               UNION
               SELECT c.id FROM crm_actions AS c JOIN waiting AS w ON c.depends_on = w.id
               WHERE c.state = 'pending'
           )
           UPDATE crm_actions AS c SET due_at = (SELECT due_at FROM moved)
           WHERE c.id = ANY(ARRAY(SELECT id FROM waiting))  -- by the key, not a scan
             AND c.due_at < (SELECT due_at FROM moved)""",
        action_id, error[:1000], delay_s, uncertain)


async def fail(con: Conn, action_id: int, *, error: str) -> None:
    """Given up for good (the CRM refused it as it is): retrying would not help. Its
    dependents are due at once, to be failed in their turn."""
    await con.execute(
        """WITH ended AS (
               UPDATE crm_actions SET state = 'failed', last_error = $2, done_at = now(),
                                      leased_at = NULL
               WHERE id = $1 AND state = 'pending' RETURNING id)""" + _DEPENDENTS_DUE,
        action_id, error[:1000])


async def actions_for_entries(con: Conn | asyncpg.Pool, account_id: int,
                              entries: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every action of these calls, in the order planned, as the calls API shows them."""
    found: dict[str, list[dict[str, Any]]] = {e: [] for e in entries}
    for r in await con.fetch(
        """SELECT id, entry_id, action, subject, state, attempts, last_error, crm_id, note,
                  payload, created_at, done_at
           FROM crm_actions WHERE account_id = $1 AND entry_id = ANY($2::text[])
           ORDER BY id""", account_id, list(entries)):
        found[r["entry_id"]].append({
            "id": r["id"], "action": r["action"], "subject": r["subject"] or None,
            "state": r["state"], "attempts": r["attempts"], "last_error": r["last_error"],
            "crm_id": r["crm_id"], "note": r["note"], "payload": orjson.loads(r["payload"]),
            "planned_at": r["created_at"], "done_at": r["done_at"]})
    return found


async def outbox_depth(con: Conn | asyncpg.Pool) -> list[tuple[int, int, float]]:
    """(account id, pending actions, age in seconds of the oldest) for every account."""
    rows = await con.fetch(
        """SELECT account_id, count(*) AS depth,
                  extract(epoch FROM now() - min(created_at))::float8 AS oldest
           FROM crm_actions WHERE state = 'pending' GROUP BY account_id""")
    return [(r["account_id"], r["depth"], r["oldest"]) for r in rows]


async def pending_actions(con: Conn | asyncpg.Pool, account_id: int
                          ) -> tuple[int, float | None]:
    """The account's outbox depth: (pending actions, age in seconds of the oldest).

    Read through the due index (pending rows only), whatever the size of the history."""
    row = await con.fetchrow(
        """SELECT count(*) AS depth, extract(epoch FROM now() - min(created_at))::float8 AS oldest
           FROM crm_actions WHERE account_id = $1 AND state = 'pending'""", account_id)
    assert row is not None
    return row["depth"], row["oldest"]

"""What happened to a call, read from the journal and the decision record.

A call is its events in ``seq`` order, the routing decision (with the PBX's
later ``result/route`` as ``final_result``) and the CRM actions planned for it
(``lookup.outbox``), with their state. Values are plain JSON but for the
timestamps, which stay ``datetime``.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from lookup.conn import Conn
from lookup.outbox import actions_for_entries

__all__ = ["find_call", "recent_calls"]


async def recent_calls(con: Conn | asyncpg.Pool, account_id: int, *, number: str | None,
                       limit: int) -> list[dict[str, Any]]:
    """The account's latest ``limit`` calls, newest event first; only ``number``'s if given.

    ``number`` is a phone key (E.164 digits), matched against either end.
    """
    entries: list[str] = [r["entry_id"] for r in await con.fetch(
        """SELECT entry_id, max(received_at) AS last FROM call_events
           WHERE account_id = $1 AND entry_id IS NOT NULL
             AND ($2::text IS NULL OR payload->'from'->>'number' = $2
                  OR payload->'to'->>'number' = $2)
           GROUP BY entry_id ORDER BY last DESC LIMIT $3""",
        account_id, number, limit)]
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


async def _calls(con: Conn | asyncpg.Pool, account_id: int, entries: list[str]
                 ) -> dict[str, dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {
        e: {"entry_id": e, "events": [], "decision": None, "crm_actions": []} for e in entries}
    if not entries:
        return calls
    for r in await con.fetch(
        """SELECT entry_id, kind, seq, call_id, call_state, location, payload, received_at
           FROM call_events WHERE account_id = $1 AND entry_id = ANY($2::text[])
           ORDER BY entry_id, seq NULLS LAST, id""", account_id, entries):
        calls[r["entry_id"]]["events"].append({
            "kind": r["kind"], "seq": r["seq"], "call_id": r["call_id"],
            "call_state": r["call_state"], "location": r["location"],
            "received_at": r["received_at"], "payload": orjson.loads(r["payload"])})
    for r in await con.fetch(
        """SELECT d.*, (SELECT (ev.payload->>'result')::int FROM call_events ev
                        WHERE ev.account_id = d.account_id AND ev.kind = 'result'
                          AND ev.payload->>'command_id' = d.command_id
                        ORDER BY ev.id DESC LIMIT 1) AS final_result
           FROM decisions d WHERE d.account_id = $1 AND d.entry_id = ANY($2::text[])
           ORDER BY d.id""", account_id, entries):
        if calls[r["entry_id"]]["decision"] is not None:
            continue  # the first decision is the call's; later ones are repeats refused
        calls[r["entry_id"]]["decision"] = {
            "outcome": r["outcome"], "routed": r["outcome"] == "routed",
            "reason": r["reason"], "number": r["number"], "client_id": r["client_id"],
            "employee_id": r["employee_id"], "extension": r["extension"], "via": r["via"],
            "command_id": r["command_id"], "pbx_status": r["pbx_status"],
            "pbx_result": r["pbx_result"], "final_result": r["final_result"],
            "latency_us": r["latency_us"], "decided_at": r["decided_at"]}
    for entry, actions in (await actions_for_entries(con, account_id, entries)).items():
        calls[entry]["crm_actions"] = actions
    return calls

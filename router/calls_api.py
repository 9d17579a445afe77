"""``GET /api/calls`` and ``GET /api/calls/{entry_id}``: what happened to a call.

Read from the journal and the decision record: the call's events in ``seq``
order, the routing decision (with the PBX's later ``result/route``), and the
CRM actions planned for it (none yet: the call automation engine is later work).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from aiohttp import web

from lookup.phones import phone_key
from router.auth import require_account_access
from router.keys import POOL
from router.sidecar import account_from_query

__all__ = ["setup_calls_api"]

_MAX_LIMIT = 500


def setup_calls_api(app: web.Application) -> None:
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{entry_id}", get_call)


async def list_calls(request: web.Request) -> web.Response:
    account = account_from_query(request)
    require_account_access(request, account)
    raw_limit = request.query.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _MAX_LIMIT:
        return web.json_response({"error": f"limit must be 1 to {_MAX_LIMIT}"}, status=400)
    number: str | None = None
    if "number" in request.query:
        key = phone_key(request.query["number"], account.settings.default_region)
        if key is None:
            return web.json_response({"error": "number is not a phone number"}, status=400)
        number = str(key)
    pool = request.app[POOL]
    entries = [r["entry_id"] for r in await pool.fetch(
        """SELECT entry_id, max(received_at) AS last FROM call_events
           WHERE account_id = $1 AND entry_id IS NOT NULL
             AND ($2::text IS NULL OR payload->'from'->>'number' = $2
                  OR payload->'to'->>'number' = $2)
           GROUP BY entry_id ORDER BY last DESC LIMIT $3""",
        account.id, number, int(raw_limit))]
    calls = await _calls(pool, account.id, entries)
    return web.json_response([calls[e] for e in entries], dumps=_dumps)


async def get_call(request: web.Request) -> web.Response:
    account = account_from_query(request)
    require_account_access(request, account)
    entry_id = request.match_info["entry_id"]
    calls = await _calls(request.app[POOL], account.id, [entry_id])
    if not calls[entry_id]["events"] and calls[entry_id]["decision"] is None:
        return web.json_response({"error": "no such call"}, status=404)
    return web.json_response(calls[entry_id], dumps=_dumps)


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


async def _calls(pool: asyncpg.Pool, account_id: int, entries: list[str]
                 ) -> dict[str, dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {
        e: {"entry_id": e, "events": [], "decision": None, "crm_actions": []} for e in entries}
    if not entries:
        return calls
    for r in await pool.fetch(
        """SELECT entry_id, kind, seq, call_id, call_state, location, payload, received_at
           FROM call_events WHERE account_id = $1 AND entry_id = ANY($2::text[])
           ORDER BY entry_id, seq NULLS LAST, id""", account_id, entries):
        calls[r["entry_id"]]["events"].append({
            "kind": r["kind"], "seq": r["seq"], "call_id": r["call_id"],
            "call_state": r["call_state"], "location": r["location"],
            "received_at": r["received_at"], "payload": orjson.loads(r["payload"])})
    for r in await pool.fetch(
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
            "employee_id": r["employee_id"], "extension": r["extension"],
            "command_id": r["command_id"], "pbx_status": r["pbx_status"],
            "pbx_result": r["pbx_result"], "final_result": r["final_result"],
            "latency_us": r["latency_us"], "decided_at": r["decided_at"]}
    return calls

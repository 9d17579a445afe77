"""Replay: what other settings would have done with the calls already journaled.

Each call of the window is modelled from the journal as the engine models it
and planned by ``automation.rules`` with the other settings; the plan is
compared with the actions the call really has in the outbox (whatever became
of them: those that failed or are still pending are marked so). Nothing is
written. The calls are replayed oldest first, each number as a chain: who the
number was before the window's first call of it is read from what happened
(new when that call, or a later one, made its client; else the client the
copy has now, or the client the call's own actions name), and from then on it
is what the replayed settings made it: a client one call would have created is
known to the next, and one it would not have created leaves the number new.
The employees' extensions are today's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from automation.call_model import JournalEvent, build_call
from automation.rules import CREATE_CLIENT, SET_RESPONSIBLE, Party, Plan, plan_call
from lookup.accounts import Account
from lookup.conn import Conn
from lookup.employees import active_extensions
from lookup.journal import entries_since, entry_events
from lookup.outbox import actions_for_entries, new_number_action, number_created
from lookup.phones import phone_key
from lookup.settings import Settings
from lookup.sql_lookup import decide_sql, decide_sql_for_client

__all__ = ["CallChange", "ReplayReport", "describe", "replay"]

_BATCH = 500
_STATE_MARK = {"pending": " [pending]", "failed": " [failed]", "dry_run": " [dry_run]"}


@dataclass(frozen=True, slots=True)
class CallChange:
    entry_id: str
    number: str
    started_at: int | None
    direction: str
    answered: bool
    done: tuple[str, ...]  # what the call's actions were, marked when not done
    would: tuple[str, ...]
    responsible_done: str | None  # whom this call gave the number's client (None: nobody)
    responsible_would: str | None


@dataclass(slots=True)
class ReplayReport:
    calls: int = 0
    unreadable: int = 0  # journaled entries no call model can be made of
    changes: list[CallChange] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)
    would: Counter[str] = field(default_factory=Counter)
    not_done: Counter[str] = field(default_factory=Counter)  # of ``done``: failed, pending
    responsibles: int = 0  # numbers whose client would end the window with another one

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls, "unreadable": self.unreadable, "changed": len(self.changes),
            "totals": {k: {"done": self.done[k], "would": self.would[k]}
                       for k in sorted(set(self.done) | set(self.would))},
            "not_done": dict(sorted(self.not_done.items())),
            "responsibles_changed": self.responsibles,
            "changes": [{"entry_id": c.entry_id, "number": c.number,
                         "started_at": c.started_at, "direction": c.direction,
                         "answered": c.answered, "done": list(c.done),
                         "would": list(c.would), "responsible_done": c.responsible_done,
                         "responsible_would": c.responsible_would} for c in self.changes],
        }


def describe(action: str, payload: Mapping[str, Any]) -> str:
    """An action as a person reads it: what and for whom, not how."""
    if action == "create_client":
        return f"create_client (responsible {payload.get('responsible_id')})"
    if action == "create_deal":
        extra = ", if none open" if payload.get("only_if_none_open") else ""
        return (f"create_deal (program {payload.get('program_id')}, state "
                f"{payload.get('state_id')}, manager {payload.get('manager_id')}{extra})")
    if action == "set_responsible":
        return f"set_responsible ({payload.get('responsible_id')})"
    if action == "record_call":
        return f"record_call ({payload.get('type')})"
    return action


def _kinds(described: Iterable[str]) -> Counter[str]:
    return Counter(d.split(" ", 1)[0] for d in described)


def _responsible(actions: Iterable[tuple[str, Mapping[str, Any]]]) -> str | None:
    """Whom the number's client is given by these actions: the transfer's responsible
    over the creation's."""
    given: dict[str, str | None] = {}
    for action, payload in actions:
        if action in (CREATE_CLIENT, SET_RESPONSIBLE):
            given[action] = payload.get("responsible_id")
    return given.get(SET_RESPONSIBLE) or given.get(CREATE_CLIENT)


def _after(party: Party, plans: Sequence[Plan], entry_id: str, *, dry_run: bool) -> Party:
    """Who the number is for its next call, had these plans been carried out (in a dry
    run nothing is, and the engine treats the number as it was)."""
    if dry_run:
        return party
    responsible = _responsible((p.action, p.payload) for p in plans)
    if party.is_new:  # a client is made with its responsible, or the number stays new
        return party if responsible is None else Party(client_id=f"(made by {entry_id})",
                                                       responsible_id=responsible)
    return Party(client_id=party.client_id, responsible_id=responsible or party.responsible_id)


async def replay(con: Conn, account: Account, other: Settings, *,
                 since: datetime, now: float) -> ReplayReport:
    report = ReplayReport()
    entries = await entries_since(con, account.id, since)
    order = {entry_id: n for n, entry_id in enumerate(entries)}
    employees = await active_extensions(con, account.id)
    chain: dict[int, Party] = {}  # each number as the replayed settings left it
    given: dict[int, tuple[str | None, str | None]] = {}  # its responsible: done, would
    for start in range(0, len(entries), _BATCH):
        batch = entries[start:start + _BATCH]
        journal = await entry_events(con, account.id, batch)
        actual = await actions_for_entries(con, account.id, batch)
        for entry_id in batch:
            try:
                call = build_call(JournalEvent(kind=e.kind, payload=e.payload,
                                               received_at=e.received_at)
                                  for e in journal[entry_id])
            except ValueError:  # nothing a call can be made of (as the engine skips it)
                report.unreadable += 1
                continue
            report.calls += 1
            real = actual[entry_id]
            described = [(describe(a["action"], a["payload"]), a["state"]) for a in real]
            planned = {d for d, _ in described}
            done = tuple(sorted(d + _STATE_MARK.get(state, "") for d, state in described))
            would_plans: list[Plan] = []
            key = phone_key(call.number or "", account.settings.default_region)
            if call.direction in ("in", "out") and key is not None:
                party = chain.get(key)
                if party is None:
                    party = await _party_then(con, account.id, key, entry_id, order, real)
                would_plans = plan_call(call, other, party, employees, phone_key=key,
                                        final=call.is_final(now))
                chain[key] = _after(party, would_plans, entry_id, dry_run=other.dry_run)
            would = tuple(sorted({describe(p.action, p.payload) for p in would_plans}))
            report.done.update(_kinds(planned))
            report.not_done.update(a["state"] for a in real if a["state"] != "done")
            report.would.update(_kinds(would))
            responsible_done = _responsible((a["action"], a["payload"]) for a in real
                                            if a["state"] != "failed")
            responsible_would = _responsible((p.action, p.payload) for p in would_plans)
            if key is not None and (responsible_done or responsible_would):
                before = given.get(key, (None, None))
                given[key] = (responsible_done or before[0], responsible_would or before[1])
            if planned != set(would):
                report.changes.append(CallChange(
                    entry_id=entry_id, number=call.number or "", started_at=call.started_at,
                    direction=call.direction, answered=call.answered, done=done, would=would,
                    responsible_done=responsible_done, responsible_would=responsible_would))
    report.responsibles = sum(1 for done_to, would_to in given.values() if done_to != would_to)
    return report


async def _party_then(con: Conn, account_id: int, key: int, entry_id: str,
                      order: Mapping[str, int], actions: Sequence[Mapping[str, Any]]) -> Party:
    """Who the number was when the window's first call of it began, as it happened."""
    if any(a["action"] == CREATE_CLIENT for a in actions):
        return Party()  # the number was new: this call made its client
    made = await number_created(con, account_id, key)
    if made is not None and order.get(made[0], -1) > order[entry_id]:
        return Party()  # its client was made by a later call of the window
    named = next((a["payload"]["client_id"] for a in actions
                  if isinstance(a["payload"].get("client_id"), str)), None)
    if named is not None:  # the client the call had (dropped since, or not the number's now)
        decision = await decide_sql_for_client(con, account_id, key, named)
        return Party(client_id=named, responsible_id=decision.employee_id)
    decision = await decide_sql(con, account_id, key)
    if decision.client_id is not None:
        return Party(client_id=decision.client_id, responsible_id=decision.employee_id)
    pending = await new_number_action(con, account_id, key)
    if pending is not None and pending[1] != entry_id:  # another call's client, on its way
        return Party(pending_action=pending[0],
                     pending_responsible=pending[2].get("responsible_id"))
    return Party()

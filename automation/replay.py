"""Replay: what other settings would have done with the calls already journaled.

Each call of the window is modelled from the journal as the engine models it
and planned by ``automation.rules`` with the other settings; the plan is
compared with the actions the call really has in the outbox. Nothing is
written. Who the number was at the time: new when the call made a client of
its own, or when its client was made by a later call; else the client the
copy has now. The employees' extensions are today's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from automation.call_model import JournalEvent, build_call
from automation.rules import CREATE_CLIENT, Party, plan_call
from lookup.accounts import Account
from lookup.conn import Conn
from lookup.employees import active_extensions
from lookup.journal import entries_since, entry_events
from lookup.outbox import actions_for_entries, number_created
from lookup.phones import phone_key
from lookup.settings import Settings
from lookup.sql_lookup import decide_sql

__all__ = ["CallChange", "ReplayReport", "describe", "replay"]

_BATCH = 500
_COUNTED = ("pending", "done", "dry_run")  # what the call did, or will do


@dataclass(frozen=True, slots=True)
class CallChange:
    entry_id: str
    number: str
    started_at: int | None
    direction: str
    answered: bool
    done: tuple[str, ...]
    would: tuple[str, ...]


@dataclass(slots=True)
class ReplayReport:
    calls: int = 0
    changes: list[CallChange] = field(default_factory=list)
    done: Counter[str] = field(default_factory=Counter)
    would: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls, "changed": len(self.changes),
            "totals": {k: {"done": self.done[k], "would": self.would[k]}
                       for k in sorted(set(self.done) | set(self.would))},
            "changes": [{"entry_id": c.entry_id, "number": c.number,
                         "started_at": c.started_at, "direction": c.direction,
                         "answered": c.answered, "done": list(c.done),
                         "would": list(c.would)} for c in self.changes],
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


async def replay(con: Conn, account: Account, other: Settings, *,
                 since: datetime, now: float) -> ReplayReport:
    report = ReplayReport()
    entries = await entries_since(con, account.id, since)
    employees = await active_extensions(con, account.id)
    for start in range(0, len(entries), _BATCH):
        batch = entries[start:start + _BATCH]
        journal = await entry_events(con, account.id, batch)
        actual = await actions_for_entries(con, account.id, batch)
        for entry_id in batch:
            events = journal[entry_id]
            if not events:
                continue
            call = build_call(JournalEvent(kind=e.kind, payload=e.payload,
                                           received_at=e.received_at) for e in events)
            report.calls += 1
            done = tuple(sorted({describe(a["action"], a["payload"])
                                 for a in actual[entry_id] if a["state"] in _COUNTED}))
            would: tuple[str, ...] = ()
            key = phone_key(call.number or "", account.settings.default_region)
            if call.direction in ("in", "out") and key is not None:
                party = await _party_then(con, account.id, key, entry_id, call.started_at,
                                          actual[entry_id])
                plans = plan_call(call, other, party, employees, phone_key=key,
                                  final=call.is_final(now))
                would = tuple(sorted({describe(p.action, p.payload) for p in plans}))
            report.done.update(_kinds(done))
            report.would.update(_kinds(would))
            if done != would:
                report.changes.append(CallChange(
                    entry_id=entry_id, number=call.number or "", started_at=call.started_at,
                    direction=call.direction, answered=call.answered, done=done, would=would))
    return report


async def _party_then(con: Conn, account_id: int, key: int, entry_id: str,
                      started_at: int | None, actions: Sequence[Mapping[str, Any]]) -> Party:
    if any(a["action"] == CREATE_CLIENT for a in actions):
        return Party()  # the number was new: this call made its client
    made = await number_created(con, account_id, key)
    if made is not None and started_at is not None and made[1].timestamp() > started_at \
            and made[0] != entry_id:
        return Party()  # its client was made by a later call
    decision = await decide_sql(con, account_id, key)
    if decision.client_id is None:
        return Party()
    return Party(client_id=decision.client_id, responsible_id=decision.employee_id)

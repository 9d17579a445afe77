"""The integration's rules: what a call does in the CRM, given the settings.

A pure function of the call model, the account's settings, who the outside
number is and the employees' extensions, so that the engine and ``replay``
(other settings on yesterday's calls) plan the same way. It returns the
actions the call should have by now; the engine stores each once.

The rules, for a number no client of the account has:
- an answered incoming call with ``accepted_incoming`` set creates the client
  as soon as it is answered, the first CRM employee who answered being its
  creator and responsible (``client_and_deal``: a deal too, ``accepted_deal``);
- with ``update_responsible_on_transfer`` on, when the call ends the
  responsible becomes the last employee who handled it (the creator stays);
- a missed incoming call with ``missed_incoming`` set creates the client when
  it ends, the first employee it was offered to being responsible; missed in
  the voice menu only with ``missed_in_ivr`` on (its employee); missed in a
  group: ``missed_in_group``'s employee when on, else the first offered;
- an outgoing call with ``outgoing_create_client`` creates the client at its
  start, the calling employee being creator and responsible.
Every call of a known client (in, out, missed), and the call that created one,
is recorded on the client's card when it ends; ``repeat_calls`` adds a deal
to an incoming call of a known client (``always_deal``, or
``deal_if_none_open``: only when none of its deals is open), with the deal
setting of the call's outcome; its manager is the employee who answered, else
the client's first active responsible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from automation.call_model import CallModel
from lookup.phones import PhoneFormat, format_phone
from lookup.settings import DealTarget, Settings

__all__ = ["CREATE_CLIENT", "CREATE_DEAL", "RECORD_CALL", "SET_RESPONSIBLE", "Party", "Plan",
           "client_name", "plan_call"]

CREATE_CLIENT = "create_client"
CREATE_DEAL = "create_deal"
RECORD_CALL = "record_call"
SET_RESPONSIBLE = "set_responsible"

ClientRef = Literal["known", "new", "pending"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """Who the outside number is when the call is planned."""

    client_id: str | None = None  # a client of the account has it (the first found)
    responsible_id: str | None = None  # that client's first active employee responsible
    pending_action: int | None = None  # no client yet; another call's create_client makes it
    pending_responsible: str | None = None  # the responsible that creation gives it
    # this call made the number's client (it was new when the call began), giving it
    # this responsible; the call keeps treating the number as new
    created_responsible: str | None = None

    @property
    def is_new(self) -> bool:
        return self.client_id is None and self.pending_action is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    action: str
    payload: dict[str, Any] = field(default_factory=dict)
    subject: str = ""
    # whose client: a known one (payload["client_id"]), the one this call's
    # create_client makes, or the one another call's creation makes
    client: ClientRef = "known"
    follows_record: bool = False  # posted after the call's first record (a recording)


def plan_call(call: CallModel, settings: Settings, party: Party, employees: Mapping[str, str],
              *, phone_key: int, final: bool) -> list[Plan]:
    """The actions this call should have by now. ``employees``: extension -> active
    employee id; ``final``: the call has ended (``CallModel.is_final``)."""
    if call.direction == "in":
        plans = _incoming(call, settings, party, employees, phone_key, final)
    elif call.direction == "out":
        plans = _outgoing(call, settings, party, employees, phone_key)
    else:
        return []
    if final and plans is not None:
        plans.extend(_record(call, party, employees, created=any(
            p.action == CREATE_CLIENT for p in plans)))
    for p in plans or ():
        if p.client == "known":
            p.payload["client_id"] = party.client_id
    return plans or []


def _incoming(call: CallModel, settings: Settings, party: Party, employees: Mapping[str, str],
              phone_key: int, final: bool) -> list[Plan] | None:
    """None: nothing at all to do (a new number the settings leave alone)."""
    # the first CRM employee who answered: one without an account (a receptionist who
    # transfers) is passed over, as the missed path passes over unknown offered extensions
    answerer = next((employees[e] for e in call.answered_by if e in employees), None)
    if not party.is_new:
        plans: list[Plan] = []
        if final and settings.repeat_calls != "record_only":
            deal = settings.accepted_deal if call.answered else settings.missed_deal
            manager = answerer or party.responsible_id or party.pending_responsible
            if manager is not None and deal.program_id is not None:
                plans.append(_deal(call, deal, manager, _ref(party), settings,
                                   only_if_none_open=settings.repeat_calls == "deal_if_none_open"))
        return plans
    if call.answered:
        if settings.accepted_incoming == "nothing" or answerer is None:
            return None
        plans = [_create(call, settings, phone_key, answerer, "in")]
        if settings.accepted_incoming == "client_and_deal":
            plans.append(_deal(call, settings.accepted_deal, answerer, "new", settings))
        if final:  # the responsible the setting asks for, if the client was made another way
            last = employees.get(call.last_handled or "")
            wanted = last if settings.update_responsible_on_transfer and last else answerer
            if wanted != (party.created_responsible or answerer):
                plans.append(Plan(action=SET_RESPONSIBLE, payload={"responsible_id": wanted},
                                  client="new"))
        return plans
    if not final or settings.missed_incoming == "nothing":
        return None
    responsible = _missed_responsible(call, settings, employees)
    if responsible is None:
        return None
    plans = [_create(call, settings, phone_key, responsible, "in")]
    if settings.missed_incoming == "client_and_deal":
        plans.append(_deal(call, settings.missed_deal, responsible, "new", settings))
    return plans


def _missed_responsible(call: CallModel, settings: Settings,
                        employees: Mapping[str, str]) -> str | None:
    if call.missed_in_ivr:
        target = settings.missed_in_ivr
        return target.employee_id if target.enabled else None
    if call.missed_in_group and settings.missed_in_group.enabled:
        return settings.missed_in_group.employee_id
    return next((employees[e] for e in call.offered if e in employees), None)


def _outgoing(call: CallModel, settings: Settings, party: Party, employees: Mapping[str, str],
              phone_key: int) -> list[Plan] | None:
    if not party.is_new:
        return []
    caller = employees.get(call.caller_extension or "")
    if not settings.outgoing_create_client or caller is None:
        return None
    return [_create(call, settings, phone_key, caller, "out")]


def _create(call: CallModel, settings: Settings, phone_key: int, employee: str,
            direction: Literal["in", "out"]) -> Plan:
    return Plan(action=CREATE_CLIENT, client="new", payload={
        "name": client_name(call.started_at, settings.timezone, direction),
        "phone": format_phone(phone_key, cast(PhoneFormat, settings.phone_format),
                              settings.default_region),
        "phone_key": phone_key,
        "responsible_id": employee,
        "creator_id": employee,
        "line": call.line if settings.source_line and direction == "in" else None,
    })


def _deal(call: CallModel, deal: DealTarget, manager: str, client: ClientRef,
          settings: Settings, *, only_if_none_open: bool = False) -> Plan:
    kind = "Входящий вызов" if call.answered else "Пропущенный вызов"
    payload: dict[str, Any] = {
        "program_id": deal.program_id, "state_id": deal.state_id, "manager_id": manager,
        "name": f"{kind} {_local(call.started_at, settings.timezone):%H:%M %d.%m.%Y}",
        "only_if_none_open": only_if_none_open,
    }
    return Plan(action=CREATE_DEAL, payload=payload, client=client)


def _record(call: CallModel, party: Party, employees: Mapping[str, str], *,
            created: bool) -> list[Plan]:
    """The call on the client's card (``providerId`` = the entry: idempotent in the CRM)."""
    if party.is_new and not created:
        return []
    client: ClientRef = "new" if created else _ref(party)
    if call.direction == "out":
        kind = "out"
        from_user, to_user = employees.get(call.caller_extension or ""), None
        from_phone, to_phone = call.line, call.number
    else:
        kind = "in" if call.answered else "miss"
        from_user, to_user = None, employees.get(call.last_handled or "")
        from_phone, to_phone = call.number, call.line
    started = call.started_at or call.ended_at or 0
    payload: dict[str, Any] = {
        "type": kind, "from_phone": from_phone, "to_phone": to_phone,
        "from_user": from_user, "to_user": to_user,
        "time_from": started, "time_to": call.ended_at or started,
        "recordings": list(call.recordings),
    }
    plans = [Plan(action=RECORD_CALL, payload=payload, client=client)]
    if call.recordings:  # posted again with the links, after the first post (one call per
        # providerId in the CRM: the later post must not be overtaken by the earlier one)
        plans.append(Plan(action=RECORD_CALL, payload=payload, client=client,
                          subject="recordings:" + ",".join(call.recordings),
                          follows_record=True))
    return plans


def _ref(party: Party) -> ClientRef:
    return "known" if party.client_id is not None else "pending"


def _local(unix: int | None, timezone: str) -> datetime:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("Europe/Moscow")
    try:
        when = datetime.fromtimestamp(unix, UTC) if unix else datetime.now(UTC)
    except (ValueError, OverflowError, OSError):  # not Unix seconds (milliseconds?): now
        when = datetime.now(UTC)
    return when.astimezone(zone)


def client_name(started_at: int | None, timezone: str, direction: Literal["in", "out"]) -> str:
    """«Новый (16:30 05.03.2018, входящий вызов)»: the call's start in the account's zone."""
    kind = "входящий вызов" if direction == "in" else "исходящий вызов"
    return f"Новый ({_local(started_at, timezone):%H:%M %d.%m.%Y}, {kind})"

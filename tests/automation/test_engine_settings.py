"""The call-handling settings test_engine.py leaves out, each for the values it can take,
through the real webhooks, the real outbox and the Megaplan emulator as a real server:
what lands in the CRM (clients, deals, call records) and what does not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from automation.call_model import JournalEvent
from emulators.megaplan_render import date_json, ref, state_json
from emulators.megaplan_store import CT_EMPLOYEE, LINE_FIELD_NAME, MegaplanState
from tests.automation import calls
from tests.automation.calls import EntryWriter
from tests.automation.conftest import Crm, CrmFactory

NEW = "79990001122"  # nobody in the emulated CRM has it
LINE = "74951112233"
DEAL = {"program_id": "1", "state_id": "2"}  # «Продажи», «В работе»
MISSED_DEAL = {"program_id": "2", "state_id": "5"}  # «Поддержка», «Обращение»
CALL_RECORDS = "/api/v3/callInfo/history"


def created(crm: Crm) -> list[Any]:
    return [crm.mp.clients[c] for c in crm.mp.created_client_ids]


def deals(crm: Crm) -> list[dict[str, Any]]:
    return list(crm.mp.deals.values())


def as_pbx_digits(phone: str) -> str:
    """A Russian number of the CRM as the PBX sends it: 7 and ten digits."""
    return "7" + "".join(ch for ch in phone if ch.isdigit())[-10:]


def own_legs(w: EntryWriter) -> list[JournalEvent]:
    """The entry's events with leg ids of its own (``EntryWriter`` names every entry's legs
    alike; the PBX never reuses one, and the router takes a leg id it saw hang up for a call
    that has ended)."""
    def renamed(payload: dict[str, Any]) -> dict[str, Any]:
        out = dict(payload)
        if "call_id" in out:
            out["call_id"] = f"{w.entry_id}-{out['call_id']}"
        for side in ("from", "to"):
            if isinstance(out.get(side), dict) and "taken_from_call_id" in out[side]:
                out[side] = {**out[side], "taken_from_call_id":
                             f"{w.entry_id}-{out[side]['taken_from_call_id']}"}
        return out

    return [JournalEvent(e.kind, renamed(dict(e.payload)), e.received_at) for e in w.events]


def known_client(crm: Crm) -> tuple[str, str]:
    """A client of the CRM with a phone no other client has (its id, the phone as digits)."""
    row = next(r for r in sorted(crm.mp.clients.values(), key=lambda r: int(r.id))
               if r.phones and not r.is_dropped and len(crm.mp.clients_by_phone(r.phones[0])) == 1)
    return row.id, as_pbx_digits(row.phones[0])


async def a_later_call_is_done(crm: Crm, tag: str) -> None:
    """A known client's answered call, played after the call under test, until its record
    is done. The planner takes calls in the order they came, so by then the call under test
    has been planned as well: an empty plan for it is its plan, not a plan still to come."""
    _client_id, phone = known_client(crm)
    w = EntryWriter(f"later-{tag}")
    calls.answered(w, phone, LINE, [crm.ext(0)])
    await crm.play(w.events)
    actions = await crm.settled(w.entry_id, 1)
    assert [(a["action"], a["state"]) for a in actions] == [("record_call", "done")]


# --- a known client whose responsibles are not simply one employee ---------------------------
@dataclass
class Known:
    crm: Crm
    client_id: str
    phone: str  # as the PBX sends it
    manager: str  # the client's first active employee responsible (crm.employee(2))


@pytest.fixture
async def known(mp_state: MegaplanState, crm_factory: CrmFactory) -> Known:
    """A client whose responsibles are, in order: another client, an employee who is not
    active, then ``crm.employee(2)`` and ``crm.employee(0)``; its first ACTIVE employee
    responsible is ``crm.employee(2)``. Set in the CRM before the service's first sync."""
    staff = sorted((e for e in mp_state.employees.values() if e.active and e.extension),
                   key=lambda e: int(e.id))
    inactive = next(e for e in mp_state.employee_list() if not e.active)
    rows = [r for r in sorted(mp_state.clients.values(), key=lambda r: int(r.id))
            if r.phones and not r.is_dropped and len(mp_state.clients_by_phone(r.phones[0])) == 1]
    row, other = rows[0], rows[1]
    mp_state.set_responsibles(row.id, [(other.content_type, other.id),
                                       (CT_EMPLOYEE, inactive.id),
                                       (CT_EMPLOYEE, staff[2].id), (CT_EMPLOYEE, staff[0].id)])
    crm = await crm_factory()
    assert (crm.employee(0), crm.employee(2)) == (staff[0].id, staff[2].id)
    return Known(crm=crm, client_id=row.id, phone=as_pbx_digits(row.phones[0]),
                 manager=staff[2].id)


def old_deal(crm: Crm, client_id: str, program_id: str, state_id: str) -> None:
    """A deal the client already has in the CRM (made by hand, not by the service)."""
    program = crm.mp.programs[program_id]
    [state] = [s for s in program.states if s.id == state_id]
    client = crm.mp.clients[client_id]
    crm.mp.add_deal({"contentType": "Deal", "name": f"Старая сделка {state.name}",
                     "program": ref("Program", program.id), "state": state_json(state),
                     "contractor": ref(client.content_type, client.id),
                     "manager": ref(CT_EMPLOYEE, crm.employee(0)),
                     "timeCreated": date_json(crm.mp.now())})


# --- 1, 2: missed_incoming = nothing -----------------------------------------------------------
async def test_missed_nothing_makes_no_client_and_no_deal_for_a_call_offered_to_employees(
    crm: Crm,
) -> None:
    # the other rules would act (an answered call would make a client and a deal): only
    # missed_incoming decides a missed one
    await crm.settings(missed_incoming="nothing", missed_deal=MISSED_DEAL,
                       accepted_incoming="client_and_deal", accepted_deal=DEAL)
    w = EntryWriter("missed-nothing")
    calls.offered_and_missed(w, NEW, LINE, [crm.ext(1), crm.ext(0)])
    await crm.play(w.events)
    await a_later_call_is_done(crm, "missed-nothing")
    assert await crm.actions("missed-nothing") == []
    assert created(crm) == []
    assert crm.mp.clients_by_phone(NEW) == []
    assert deals(crm) == []
    assert "missed-nothing" not in crm.mp.call_infos
    assert [x.path for x in crm.mp.writes] == [CALL_RECORDS]  # the later call's record only


async def test_missed_in_group_enabled_makes_nothing_while_missed_calls_make_no_clients(
    crm: Crm,
) -> None:
    await crm.settings(missed_incoming="nothing",
                       missed_in_group={"enabled": True, "employee_id": crm.employee(2)})
    w = EntryWriter("group-nothing")
    calls.to_group(w, NEW, LINE, [crm.ext(0), crm.ext(1)], "7")
    await crm.play(w.events)
    await a_later_call_is_done(crm, "group-nothing")
    assert await crm.actions("group-nothing") == []
    assert created(crm) == []
    assert crm.mp.clients_by_phone(NEW) == []
    assert deals(crm) == []
    assert "group-nothing" not in crm.mp.call_infos
    assert [x.path for x in crm.mp.writes] == [CALL_RECORDS]


# --- 3: missed_in_group off ------------------------------------------------------------------
async def test_missed_in_group_off_gives_the_client_to_the_first_employee_offered_in_the_group(
    crm: Crm,
) -> None:
    await crm.settings(missed_incoming="client",
                       missed_in_group={"enabled": False, "employee_id": None})
    w = EntryWriter("group-first")
    # offered first to a later employee than the second: "first" is the order of the offer
    calls.to_group(w, NEW, LINE, [crm.ext(3), crm.ext(1)], "7")
    await crm.play(w.events)
    actions = await crm.settled("group-first", 2)
    assert [(a["action"], a["state"]) for a in actions] == [
        ("create_client", "done"), ("record_call", "done")]  # no deal, no set_responsible
    [client] = created(crm)
    assert client.responsibles == [(CT_EMPLOYEE, crm.employee(3))]
    assert client.phones == ["+7 999 000-11-22"]  # phone_format's default, international
    assert client.name == "Новый (01:13 15.11.2023, входящий вызов)"  # T0 + 1, in Moscow
    assert deals(crm) == []
    assert crm.mp.call_infos["group-first"]["type"] == "miss"


# --- 4, 5: repeat_calls = deal_if_none_open ---------------------------------------------------
async def test_deal_if_none_open_makes_a_missed_deal_for_a_known_clients_missed_call(
    known: Known,
) -> None:
    crm = known.crm
    await crm.settings(repeat_calls="deal_if_none_open", accepted_deal=DEAL,
                       missed_deal=MISSED_DEAL)
    w = EntryWriter("known-missed")
    calls.offered_and_missed(w, known.phone, LINE, [crm.ext(0)])
    await crm.play(w.events)
    actions = await crm.settled("known-missed", 2)
    assert sorted((a["action"], a["state"]) for a in actions) == [
        ("create_deal", "done"), ("record_call", "done")]
    [deal] = deals(crm)
    assert (deal["program"]["id"], deal["state"]["id"]) == ("2", "5")  # missed_deal's
    assert deal["contractor"]["id"] == known.client_id
    # nobody answered: the client's first active responsible, not the employee offered
    assert deal["manager"]["id"] == known.manager
    assert created(crm) == []
    assert crm.mp.call_infos["known-missed"]["type"] == "miss"


@pytest.mark.parametrize(("old", "made"), [
    ([("1", "3"), ("2", "7")], True),  # won and closed: positive and negative
    ([("1", "3"), ("2", "5")], False),  # one of them still active
])
async def test_deal_if_none_open_makes_a_deal_only_when_every_deal_of_the_client_is_closed(
    crm: Crm, old: list[tuple[str, str]], made: bool,
) -> None:
    client_id, phone = known_client(crm)
    for program_id, state_id in old:
        old_deal(crm, client_id, program_id, state_id)
    await crm.settings(repeat_calls="deal_if_none_open", accepted_deal=DEAL,
                       missed_deal=MISSED_DEAL)
    w = EntryWriter("closed")
    calls.answered(w, phone, LINE, [crm.ext(1)])
    await crm.play(w.events)
    actions = await crm.settled("closed", 2)
    assert sorted((a["action"], a["state"]) for a in actions) == [
        ("create_deal", "done"), ("record_call", "done")]
    [planned] = [a for a in actions if a["action"] == "create_deal"]
    new = deals(crm)[len(old):]
    if made:
        [deal] = new
        assert (deal["program"]["id"], deal["state"]["id"]) == ("1", "2")  # accepted_deal's
        assert deal["contractor"]["id"] == client_id
        assert deal["manager"]["id"] == crm.employee(1)  # who answered
        assert planned["crm_id"] == deal["id"]
    else:
        assert new == []
        assert planned["note"] == "the client has an open deal"
    assert created(crm) == []
    assert crm.mp.call_infos["closed"]["type"] == "in"
    assert crm.mp.call_infos["closed"]["toUser"]["id"] == crm.employee(1)


# --- 6: repeat_calls = always_deal, nobody answered ------------------------------------------
async def test_always_deal_on_a_missed_call_makes_the_clients_first_active_responsible_manager(
    known: Known,
) -> None:
    crm = known.crm
    await crm.settings(repeat_calls="always_deal", accepted_deal=DEAL, missed_deal=MISSED_DEAL)
    w = EntryWriter("always-missed")
    calls.offered_and_missed(w, known.phone, LINE, [crm.ext(0), crm.ext(1)])
    await crm.play(w.events)
    actions = await crm.settled("always-missed", 2)
    assert sorted((a["action"], a["state"]) for a in actions) == [
        ("create_deal", "done"), ("record_call", "done")]
    [deal] = deals(crm)
    assert deal["manager"]["id"] == known.manager
    assert (deal["program"]["id"], deal["state"]["id"]) == ("2", "5")
    assert deal["contractor"]["id"] == known.client_id
    assert created(crm) == []
    assert crm.mp.call_infos["always-missed"]["type"] == "miss"


# --- 7: timezone --------------------------------------------------------------------------------
START = int(datetime(2024, 3, 5, 19, 29, 59, tzinfo=UTC).timestamp())  # first leg: 19:30:00 UTC


@pytest.mark.parametrize(("zone", "direction", "name"), [
    ("Asia/Yekaterinburg", "in", "Новый (00:30 06.03.2024, входящий вызов)"),  # UTC+5
    ("America/New_York", "in", "Новый (14:30 05.03.2024, входящий вызов)"),  # UTC-5
    ("Asia/Yekaterinburg", "out", "Новый (00:30 06.03.2024, исходящий вызов)"),
])
async def test_a_new_clients_name_tells_the_calls_start_in_the_accounts_timezone(
    crm: Crm, zone: str, direction: str, name: str,
) -> None:
    await crm.settings(timezone=zone, accepted_incoming="client", outgoing_create_client=True,
                       phone_format="e164")
    w = EntryWriter("zone", start=START)
    if direction == "in":
        calls.answered(w, NEW, LINE, [crm.ext(1)])
    else:
        calls.outgoing(w, crm.ext(1), NEW, LINE, picked_up=True)
    await crm.play(w.events)
    actions = await crm.settled("zone", 2)
    assert [(a["action"], a["state"]) for a in actions] == [
        ("create_client", "done"), ("record_call", "done")]
    summary = w.events[-1].payload
    assert summary["create_time"] == START + 1
    [client] = created(crm)
    assert client.name == name  # in Moscow: «Новый (22:30 05.03.2024, …)»
    assert client.phones == ["+" + NEW]
    assert client.responsibles == [(CT_EMPLOYEE, crm.employee(1))]
    assert deals(crm) == []


# --- 8: default_region -----------------------------------------------------------------------
@pytest.mark.parametrize(("region", "local", "international", "national"), [
    # read with RU, these would be other numbers: 70291234567 and 70441234567
    ("BY", "80291234567", "375291234567", "8 029 123-45-67"),
    ("UA", "0441234567", "380441234567", "044 123 4567"),
])
async def test_a_new_number_in_the_regions_national_form_is_read_with_default_region(
    crm: Crm, region: str, local: str, international: str, national: str,
) -> None:
    await crm.settings(default_region=region, accepted_incoming="client",
                       phone_format="national")
    w = EntryWriter("region")
    calls.answered(w, local, LINE, [crm.ext(1)])
    await crm.play(w.events)
    actions = await crm.settled("region", 2)
    assert [(a["action"], a["state"]) for a in actions] == [
        ("create_client", "done"), ("record_call", "done")]
    [client] = created(crm)
    assert client.phones == [national]
    assert client.responsibles == [(CT_EMPLOYEE, crm.employee(1))]
    # the caller's next call, in either form, goes to that employee
    assert await crm.routed_to(local, crm.employee(1)) == crm.employee(1)
    assert await crm.routed_to(international, crm.employee(1)) == crm.employee(1)
    await crm.settings(route_to_responsible=True)
    nxt = EntryWriter("region-next")
    calls.answered(nxt, local, LINE, [crm.ext(1)])
    events = own_legs(nxt)
    await crm.play(events[:1])  # the trigger: the call appears in the voice menu
    routes = await crm.svc.pbx.wait_routes(1)
    assert [r.payload["to_number"] for r in routes] == [crm.ext(1)]
    await crm.play(events[1:])
    actions = await crm.settled("region-next", 1)
    assert [(a["action"], a["state"]) for a in actions] == [("record_call", "done")]
    assert len(created(crm)) == 1  # a known client now: no second one


# --- 9: source_line and phone_format on a missed call ------------------------------------------
OTHER_LINE = "74957778899"


@pytest.mark.parametrize("source_line", [True, False])
async def test_source_line_sets_the_dialled_line_on_a_client_made_by_a_missed_call(
    crm: Crm, source_line: bool,
) -> None:
    await crm.settings(missed_incoming="client", source_line=source_line)
    w = EntryWriter("missed-line")
    calls.offered_and_missed(w, NEW, OTHER_LINE, [crm.ext(1)])
    await crm.play(w.events)
    await crm.settled("missed-line", 2)
    [client] = created(crm)
    assert client.responsibles == [(CT_EMPLOYEE, crm.employee(1))]
    if source_line:
        assert client.extra.get(LINE_FIELD_NAME) == OTHER_LINE
    else:
        assert LINE_FIELD_NAME not in client.extra
    assert crm.mp.call_infos["missed-line"]["type"] == "miss"


@pytest.mark.parametrize("phone_format", ["e164", "international", "national", "digits"])
async def test_a_missed_call_clients_phone_is_written_in_the_chosen_format(
    crm: Crm, phone_format: str,
) -> None:
    await crm.settings(missed_incoming="client", phone_format=phone_format)
    w = EntryWriter("missed-fmt")
    calls.offered_and_missed(w, NEW, LINE, [crm.ext(1)])
    await crm.play(w.events)
    await crm.settled("missed-fmt", 2)
    [client] = created(crm)
    assert client.phones == [{"e164": "+79990001122", "international": "+7 999 000-11-22",
                              "national": "8 (999) 000-11-22",
                              "digits": "79990001122"}[phone_format]]
    assert client.responsibles == [(CT_EMPLOYEE, crm.employee(1))]
    # whatever the form written, the number reads back as the caller's
    assert await crm.routed_to(NEW, crm.employee(1)) == crm.employee(1)

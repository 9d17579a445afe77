"""The rules as a pure function: the edges the end-to-end tests do not reach."""

from __future__ import annotations

import pytest

from automation.call_model import SILENCE, JournalEvent, build_call
from automation.rules import Party, client_name, plan_call
from lookup.phones import phone_key
from lookup.settings import DealTarget, EmployeeTarget, Settings
from tests.automation import calls
from tests.automation.calls import EntryWriter

NEW, LINE = "79990001122", "74951112233"
KEY = 79990001122


def test_names_use_the_calls_start_in_the_accounts_timezone() -> None:
    start = 1520256600  # 2018-03-05 13:30 UTC
    assert client_name(start, "Europe/Moscow", "in") == "Новый (16:30 05.03.2018, входящий вызов)"
    assert client_name(start, "Asia/Vladivostok", "out") == (
        "Новый (23:30 05.03.2018, исходящий вызов)")
    assert client_name(start, "Not/AZone", "in").startswith("Новый (16:30")  # Moscow's


def test_a_new_number_answered_by_someone_unknown_to_the_copy_makes_nothing() -> None:
    w = EntryWriter("e")
    calls.answered(w, NEW, LINE, ["555"])
    plans = plan_call(build_call(w.events), Settings(accepted_incoming="client"), Party(),
                      {"101": "1"}, phone_key=KEY, final=True)
    assert plans == []


def test_a_missed_call_offered_only_to_unknown_extensions_makes_nothing() -> None:
    w = EntryWriter("e")
    calls.offered_and_missed(w, NEW, LINE, ["555", "556"])
    plans = plan_call(build_call(w.events), Settings(missed_incoming="client"), Party(),
                      {"101": "1"}, phone_key=KEY, final=True)
    assert plans == []


def test_a_missed_group_call_falls_back_to_the_first_offered_employee_the_copy_knows() -> None:
    w = EntryWriter("e")
    calls.to_group(w, NEW, LINE, ["555", "102"], "9")
    settings = Settings(missed_incoming="client",
                        missed_in_group=EmployeeTarget(enabled=False))
    plans = plan_call(build_call(w.events), settings, Party(), {"102": "2"}, phone_key=KEY,
                      final=True)
    assert [(p.action, p.payload.get("responsible_id")) for p in plans] == [
        ("create_client", "2"), ("record_call", None)]


def test_a_repeat_deal_goes_to_the_clients_responsible_when_nobody_answered() -> None:
    w = EntryWriter("e")
    calls.offered_and_missed(w, NEW, LINE, ["555"])
    settings = Settings(repeat_calls="always_deal",
                        accepted_deal=DealTarget(program_id="1", state_id="2"),
                        missed_deal=DealTarget(program_id="2", state_id="5"))
    plans = plan_call(build_call(w.events), settings, Party(client_id="77", responsible_id="3"),
                      {}, phone_key=KEY, final=True)
    deal = next(p for p in plans if p.action == "create_deal")
    assert (deal.payload["manager_id"], deal.payload["program_id"], deal.payload["client_id"]) == (
        "3", "2", "77")


def test_a_known_clients_call_waits_for_its_end_before_anything_is_planned() -> None:
    w = EntryWriter("e")
    calls.answered(w, NEW, LINE, ["101"])
    plans = plan_call(build_call(w.events), Settings(repeat_calls="record_only"),
                      Party(client_id="77"), {"101": "1"}, phone_key=KEY, final=False)
    assert plans == []


def test_internal_calls_do_nothing() -> None:
    w = EntryWriter("e")
    w.leg("x", "Appeared", "abonent", frm={"extension": "101"}, to={"extension": "102"})
    w.summary({"call_direction": 0, "from": {"extension": "101"}, "to": {"extension": "102"},
               "create_time": calls.T0, "end_time": calls.T0 + 5, "entry_result": 1})
    plans = plan_call(build_call(w.events), Settings(outgoing_create_client=True,
                                                     accepted_incoming="client"),
                      Party(), {"101": "1", "102": "2"}, phone_key=KEY, final=True)
    assert plans == []


def test_a_new_number_a_receptionist_answers_and_transfers_goes_to_the_crm_employee_after(
) -> None:
    w = EntryWriter("e")
    calls.answered(w, NEW, LINE, ["555", "102"], transfers=1)  # 555 has no CRM account
    settings = Settings(accepted_incoming="client_and_deal",
                        accepted_deal=DealTarget(program_id="1", state_id="2"))
    employees = {"102": "2"}
    cut = next(i for i, e in enumerate(w.events) if e.kind == "call"
               and e.payload["call_state"] == "Connected" and e.payload["call_id"] == "ab1")
    assert plan_call(build_call(w.events[:cut]), settings, Party(), employees, phone_key=KEY,
                     final=False) == []  # only 555 has answered so far
    plans = plan_call(build_call(w.events), settings, Party(), employees, phone_key=KEY,
                      final=True)
    assert [(p.action, p.payload.get("responsible_id"), p.payload.get("creator_id"),
             p.payload.get("manager_id"), p.payload.get("to_user")) for p in plans] == [
        ("create_client", "2", "2", None, None), ("create_deal", None, None, "2", None),
        ("record_call", None, None, None, "2")]


def test_a_long_answered_call_is_recorded_with_its_summarys_end_not_cut_at_ten_minutes(
) -> None:
    w = EntryWriter("e")
    calls.answered(w, NEW, LINE, ["101"], talk_s=900)  # 15 minutes without a notification
    *legs, summary = w.events
    talking = legs[:until_answered(legs)]
    party, settings = Party(client_id="77"), Settings(repeat_calls="record_only")
    model = build_call(talking)
    assert plan_call(model, settings, party, {"101": "1"}, phone_key=KEY,
                     final=model.is_final(model.last_received_at + SILENCE)) == []
    model = build_call(w.events)
    [record] = plan_call(model, settings, party, {"101": "1"}, phone_key=KEY,
                         final=model.is_final(summary.received_at))
    assert (record.payload["time_to"], record.payload["to_user"]) == (
        summary.payload["end_time"], "1")
    assert record.payload["time_to"] - record.payload["time_from"] > 900


def test_a_call_waiting_in_a_queue_over_ten_minutes_is_not_planned_as_missed() -> None:
    w = EntryWriter("e")
    calls.to_group(w, NEW, LINE, ["101", "102"], "7", answered_by=1)
    settings = Settings(accepted_incoming="client", missed_incoming="client",
                        missed_in_group=EmployeeTarget(enabled=True, employee_id="9"))
    employees = {"101": "1", "102": "2"}
    # 101 did not pick up; the caller waits in the queue (its leg open) for 102
    waiting = build_call(w.events[:next(i for i, e in enumerate(w.events)
                                        if e.payload.get("call_id") == "g1")])
    assert not waiting.answered
    assert plan_call(waiting, settings, Party(), employees, phone_key=KEY,
                     final=waiting.is_final(waiting.last_received_at + SILENCE + 300)) == []
    whole = build_call(w.events)
    plans = plan_call(whole, settings, Party(), employees, phone_key=KEY,
                      final=whole.is_final(whole.last_received_at))
    assert [(p.action, p.payload.get("responsible_id")) for p in plans] == [
        ("create_client", "2"), ("record_call", None)]


@pytest.mark.parametrize("phone_format", ["e164", "international", "national", "digits"])
def test_a_foreign_new_number_is_written_so_that_it_reads_back_as_itself(
    phone_format: str,
) -> None:
    foreign = "380441234567"  # Kyiv, calling a Russian account
    w = EntryWriter("e")
    calls.answered(w, foreign, LINE, ["101"])
    settings = Settings(accepted_incoming="client", phone_format=phone_format)
    key = phone_key(foreign, settings.default_region)
    assert key is not None
    [create, _] = plan_call(build_call(w.events), settings, Party(), {"101": "1"},
                            phone_key=key, final=True)
    written = create.payload["phone"]
    assert phone_key(written, settings.default_region) == key  # the sync reads it back so
    assert written == ("+380441234567" if phone_format == "e164" else "+380 44 123 4567")


def until_answered(events: list[JournalEvent]) -> int:
    """How many events there are up to the first Connected of an employee's leg."""
    return next(i + 1 for i, e in enumerate(events) if e.kind == "call"
                and e.payload["call_state"] == "Connected" and e.payload["location"] == "abonent")

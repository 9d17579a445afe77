"""The rules as a pure function: the edges the end-to-end tests do not reach."""

from __future__ import annotations

from automation.call_model import build_call
from automation.rules import Party, client_name, plan_call
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

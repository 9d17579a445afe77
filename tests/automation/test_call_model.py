"""The call model: what a call was, the same whatever order and repeats its
notifications came in."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automation.call_model import OPEN_SILENCE, SILENCE, CallModel, JournalEvent, build_call
from tests.automation.calls import SUMMARY_TELLS, T0, Scenario, calls

E = "MjA4NzQ4OTA5Mg=="
CALLER, LINE = "79161234567", "74951112233"
IVR_FROM, IVR_TO = {"number": CALLER}, {"number": LINE, "line_number": LINE}


def leg(seq: int, call_id: str, state: str, location: str, frm: dict[str, Any],
        to: dict[str, Any], **top: Any) -> JournalEvent:
    payload = {"entry_id": E, "call_id": call_id, "timestamp": T0 + seq, "seq": seq,
               "call_state": state, "location": location, "from": frm, "to": to, **top}
    return JournalEvent("call", payload, received_at=T0 + seq + 0.5)


def summary(fields: dict[str, Any], received_at: float = T0 + 100.5) -> JournalEvent:
    return JournalEvent("summary", {"entry_id": E, **fields}, received_at=received_at)


def recording(recording_id: str, state: str, at: int) -> JournalEvent:
    return JournalEvent("recording", {"entry_id": E, "recording_id": recording_id,
                                      "recording_state": state, "timestamp": at},
                        received_at=at + 0.5)


def fields(model: CallModel, names: Any) -> dict[str, Any]:
    return {name: getattr(model, name) for name in names}


ROUTED_FROM = {"number": "", "taken_from_call_id": "ivr"}  # a leg our route command created
ANSWERED = [
    leg(1, "ivr", "Appeared", "ivr", IVR_FROM, IVR_TO),
    leg(2, "ab", "Appeared", "abonent", ROUTED_FROM, {"extension": "101"}, command_id="c1"),
    leg(3, "ivr", "Disconnected", "ivr", IVR_FROM, IVR_TO),
    leg(4, "ab", "Connected", "abonent", ROUTED_FROM, {"extension": "101"}, command_id="c1"),
    leg(5, "ab", "Disconnected", "abonent", ROUTED_FROM, {"extension": "101"}, command_id="c1"),
    summary({"call_direction": 1, "from": {"number": CALLER},
             "to": {"extension": "101", "number": LINE}, "line_number": LINE,
             "create_time": T0 + 1, "forward_time": T0 + 2, "talk_time": T0 + 4,
             "end_time": T0 + 5, "entry_result": 1, "disconnect_reason": 1110}),
]


def test_an_answered_call_is_incoming_and_answered_by_the_employee_it_was_routed_to() -> None:
    assert build_call(ANSWERED) == CallModel(
        entry_id=E, direction="in", number=CALLER, line=LINE, answered=True,
        answered_at=T0 + 4, last_handled="101", answered_by=("101",),
        offered=("101",),
        groups=(), missed_in_ivr=False, missed_in_group=False, caller_extension=None,
        started_at=T0 + 1, ended_at=T0 + 5, has_summary=True, ended=True, recordings=(),
        dtmf=(), last_received_at=T0 + 100.5,
    )


def test_the_legs_of_an_answered_call_tell_the_same_as_its_summary() -> None:
    with_summary, legs_only = build_call(ANSWERED), build_call(ANSWERED[:-1])
    assert not legs_only.has_summary
    assert legs_only.ended  # every leg hung up
    same = [f for f in CallModel.__dataclass_fields__ if f not in ("has_summary",
                                                                    "last_received_at")]
    assert fields(legs_only, same) == fields(with_summary, same)


def test_a_transferred_call_was_answered_first_by_one_and_handled_last_by_another() -> None:
    first_to, second_to = {"extension": "101"}, {"extension": "102", "was_transferred": True}
    # the transfer leg comes from the first employee: the call stays incoming
    second_from = {"extension": "101", "taken_from_call_id": "ab1"}
    model = build_call([
        leg(1, "ivr", "Appeared", "ivr", IVR_FROM, IVR_TO),
        leg(2, "ab1", "Appeared", "abonent", ROUTED_FROM, first_to),
        leg(3, "ivr", "Disconnected", "ivr", IVR_FROM, IVR_TO),
        leg(4, "ab1", "Connected", "abonent", ROUTED_FROM, first_to),
        leg(5, "ab1", "OnHold", "abonent", ROUTED_FROM, first_to),
        leg(6, "ab2", "Appeared", "abonent", second_from, second_to),
        leg(7, "ab1", "Disconnected", "abonent", ROUTED_FROM, first_to),
        leg(8, "ab2", "Connected", "abonent", second_from, second_to),
        leg(9, "ab2", "Disconnected", "abonent", second_from, second_to),
    ])
    assert model.direction == "in"
    assert model.first_answered == "101"
    assert model.last_handled == "102"
    assert model.answered_by == ("101", "102")
    assert model.offered == ("101", "102")
    assert model.answered_at == T0 + 4
    assert model.ended


def test_a_call_to_a_group_that_nobody_answered_is_missed_in_the_group() -> None:
    q_from, q_to = {"number": CALLER, "taken_from_call_id": "ivr"}, {"acd_group": "7"}
    a_from = {"number": CALLER, "taken_from_call_id": "q"}
    model = build_call([
        leg(1, "ivr", "Appeared", "ivr", IVR_FROM, IVR_TO),
        leg(2, "q", "Appeared", "queue", q_from, q_to),
        leg(3, "ivr", "Disconnected", "ivr", IVR_FROM, IVR_TO),
        leg(4, "g1", "Appeared", "abonent", a_from, {"extension": "101", "acd_group": "7"}),
        leg(5, "g2", "Appeared", "abonent", a_from, {"extension": "102", "acd_group": "7"}),
        leg(6, "g1", "Disconnected", "abonent", a_from, {"extension": "101", "acd_group": "7"}),
        leg(7, "g2", "Disconnected", "abonent", a_from, {"extension": "102", "acd_group": "7"}),
        leg(8, "q", "Disconnected", "queue", q_from, q_to),
        summary({"call_direction": 1, "from": {"number": CALLER},
                 "to": {"acd_group": "7", "number": LINE}, "line_number": LINE,
                 "create_time": T0 + 1, "talk_time": 0, "end_time": T0 + 8, "entry_result": 0}),
    ])
    assert model.missed_in_group
    assert not model.missed_in_ivr
    assert not model.answered
    assert model.answered_at is None
    assert model.groups == ("7",)
    assert model.offered == ("101", "102")
    assert model.first_answered is None


def test_a_call_that_never_left_the_voice_menu_is_missed_in_the_ivr() -> None:
    model = build_call([
        leg(1, "ivr", "Appeared", "ivr", IVR_FROM, IVR_TO),
        leg(2, "ivr", "Connected", "ivr", IVR_FROM, IVR_TO),  # the greeting answers: not a person
        leg(3, "ivr", "Disconnected", "ivr", IVR_FROM, IVR_TO),
    ])
    assert model.missed_in_ivr
    assert not model.missed_in_group
    assert not model.answered
    assert model.offered == ()
    assert model.ended
    assert not model.has_summary
    assert (model.started_at, model.ended_at) == (T0 + 1, T0 + 3)


def test_a_call_offered_to_two_employees_and_missed_lists_both_in_order() -> None:
    frm = {"number": CALLER, "taken_from_call_id": "ivr"}
    model = build_call([
        leg(1, "ivr", "Appeared", "ivr", IVR_FROM, IVR_TO),
        leg(2, "a", "Appeared", "abonent", frm, {"extension": "205"}),
        leg(3, "a", "Disconnected", "abonent", frm, {"extension": "205"}),
        leg(4, "b", "Appeared", "abonent", frm, {"extension": "104"}),
        leg(5, "b", "Disconnected", "abonent", frm, {"extension": "104"}),
        leg(6, "ivr", "Disconnected", "ivr", IVR_FROM, IVR_TO),
    ][::-1])  # arriving backwards changes nothing
    assert model.offered == ("205", "104")
    assert not model.answered
    assert not model.missed_in_ivr
    assert not model.missed_in_group


def test_an_outgoing_call_names_the_calling_employee_and_the_number_called() -> None:
    frm, to = {"extension": "101", "number": LINE}, {"number": "79160000000"}
    model = build_call([
        leg(1, "out", "Appeared", "abonent", frm, to),
        leg(2, "out", "Connected", "abonent", frm, to),
        leg(3, "out", "Disconnected", "abonent", frm, to),
    ])
    assert model.direction == "out"
    assert model.number == "79160000000"
    assert model.caller_extension == "101"
    assert model.answered
    assert model.first_answered is None  # the person who picked up is not an employee
    assert model.offered == ()
    assert not model.missed_in_ivr


def test_a_hung_up_call_without_summary_is_final_after_600_seconds_of_silence_not_before(
) -> None:
    legs_only = build_call(ANSWERED[:-1])
    last = legs_only.last_received_at
    assert legs_only.ended
    assert not legs_only.is_final(last + 599.9)
    assert legs_only.is_final(last + 600)
    assert legs_only.is_final(last + 60, silence=60)


def test_a_call_with_a_leg_still_open_is_final_only_after_the_long_cap() -> None:
    still_ringing = build_call(ANSWERED[:2])  # its Disconnected and summary were lost
    last = still_ringing.last_received_at
    assert last == T0 + 2.5
    assert not still_ringing.ended
    assert not still_ringing.is_final(last + SILENCE)
    assert not still_ringing.is_final(last + OPEN_SILENCE - 1)
    assert still_ringing.is_final(last + OPEN_SILENCE)
    assert OPEN_SILENCE >= 8 * 3600  # a working day's conversation is not cut


def _later(event: JournalEvent, seconds: int) -> JournalEvent:
    """The event, ``seconds`` later (its timestamps and its arrival)."""
    payload = dict(event.payload)
    for key in ("timestamp", "end_time"):
        if key in payload:
            payload[key] += seconds
    return JournalEvent(event.kind, payload, received_at=event.received_at + seconds)


TALK_S = 900  # a 15-minute conversation: the PBX sends nothing while it lasts
LONG_ANSWERED = [*ANSWERED[:4], *(_later(e, TALK_S) for e in ANSWERED[4:])]


def test_a_long_answered_call_is_not_final_after_ten_silent_minutes_but_is_with_its_summary(
) -> None:
    talking = build_call(LONG_ANSWERED[:4])  # ivr hung up at T0 + 3, 101 is talking
    assert not talking.ended
    assert not talking.is_final(talking.last_received_at + SILENCE)
    assert not talking.is_final(talking.last_received_at + TALK_S - 1)
    done = build_call(LONG_ANSWERED)
    assert done.is_final(done.last_received_at)
    assert (done.answered, done.started_at, done.ended_at) == (True, T0 + 1, T0 + 5 + TALK_S)


def test_a_call_waiting_in_a_queue_for_over_ten_minutes_is_not_final() -> None:
    q_from, q_to = {"number": CALLER, "taken_from_call_id": "ivr"}, {"acd_group": "7"}
    waiting = build_call([
        leg(1, "ivr", "Appeared", "ivr", IVR_FROM, IVR_TO),
        leg(2, "q", "Appeared", "queue", q_from, q_to),
        leg(3, "ivr", "Disconnected", "ivr", IVR_FROM, IVR_TO),
    ])
    assert waiting.missed_in_group  # as it stands: not to act on before it is final
    assert not waiting.is_final(waiting.last_received_at + SILENCE + 300)


def test_a_call_with_its_summary_is_final_at_once() -> None:
    model = build_call(ANSWERED)
    assert model.is_final(model.last_received_at)


def test_recordings_are_listed_once_each_in_the_order_they_were_made() -> None:
    model = build_call([
        *ANSWERED,
        recording("r2", "Completed", T0 + 40),
        recording("r1", "Completed", T0 + 30),
        recording("r2", "Started", T0 + 20),
        recording("r1", "Started", T0 + 10),
        recording("r1", "Started", T0 + 10),
        JournalEvent("recording", {"entry_id": E}, received_at=T0 + 50.0),  # no id: nothing
    ])
    assert model.recordings == ("r1", "r2")


def test_digits_pressed_in_the_voice_menu_are_kept_in_order() -> None:
    def press(seq: int, digits: str) -> JournalEvent:
        return JournalEvent("dtmf", {"entry_id": E, "call_id": "ivr", "seq": seq,
                                     "timestamp": T0 + seq, "dtmf": digits}, received_at=T0)

    model = build_call([press(3, "2"), press(2, "1"), press(3, "2"), press(4, "1")])
    assert model.dtmf == ("1", "2", "1")


def test_a_summary_alone_says_what_the_call_was() -> None:
    model = build_call(ANSWERED[-1:])
    assert fields(model, ("direction", "number", "line", "answered", "answered_at",
                          "first_answered", "last_handled", "offered", "started_at",
                          "ended_at", "ended")) == {
        "direction": "in", "number": CALLER, "line": LINE, "answered": True,
        "answered_at": T0 + 4, "first_answered": "101", "last_handled": "101",
        "offered": ("101",), "started_at": T0 + 1, "ended_at": T0 + 5, "ended": True,
    }


def test_a_summary_alone_of_a_call_missed_in_the_voice_menu_says_so() -> None:
    model = build_call([summary({"call_direction": 1, "from": {"number": CALLER},
                                 "to": {"number": LINE}, "line_number": LINE,
                                 "create_time": T0, "talk_time": 0, "end_time": T0 + 9,
                                 "entry_result": 0})])
    assert model.missed_in_ivr
    assert model.answered_at is None


def test_one_leg_alone_is_a_call_still_in_the_voice_menu() -> None:
    model = build_call(ANSWERED[:1])
    assert (model.direction, model.number, model.line) == ("in", CALLER, LINE)
    assert not model.ended
    assert model.ended_at is None
    assert not model.is_final(model.last_received_at + 1)


def test_the_summary_wins_on_direction_and_result() -> None:
    frm, to = {"extension": "101"}, {"extension": "102"}
    legs = [leg(1, "x", "Appeared", "abonent", frm, to),
            leg(2, "x", "Connected", "abonent", frm, to)]
    assert build_call(legs).direction == "internal"
    assert build_call(legs).answered
    model = build_call([*legs, summary({"call_direction": 1, "entry_result": 0})])
    assert model.direction == "in"
    assert not model.answered
    assert model.answered_at is None


def test_missing_null_and_numeric_fields_do_not_raise() -> None:
    model = build_call([
        JournalEvent("call", {"entry_id": E, "call_id": "a", "call_state": "Appeared",
                              "seq": None, "timestamp": None, "from": None, "to": None},
                     received_at=1.0),
        JournalEvent("call", {"entry_id": E, "call_id": "b", "call_state": "Appeared",
                              "location": "ivr", "from": {"number": 79161234567},
                              "to": {"line_number": None}}, received_at=2.0),
        JournalEvent("summary", {"entry_id": E, "call_direction": None, "from": None,
                                 "to": None, "entry_result": None}, received_at=3.0),
        JournalEvent("recording", {"entry_id": E, "recording_id": None}, received_at=4.0),
        JournalEvent("dtmf", {"entry_id": E}, received_at=5.0),
    ])
    assert model.direction == "in"
    assert model.number == CALLER
    assert model.line is None
    assert model.started_at is None
    assert model.last_received_at == 5.0


def test_no_events_is_an_error() -> None:
    with pytest.raises(ValueError, match="one entry"):
        build_call([])


def test_events_of_two_entries_are_an_error() -> None:
    other = JournalEvent("call", {**ANSWERED[0].payload, "entry_id": "other"}, received_at=0.0)
    with pytest.raises(ValueError, match="one entry"):
        build_call([ANSWERED[0], other])


# Properties over generated calls of every typical kind.

@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_order_and_any_repeats_of_an_entrys_events_give_the_same_model(
        data: st.DataObject) -> None:
    call: Scenario = data.draw(calls(ties=True), label="call")
    events = call.events
    if data.draw(st.booleans(), label="only part of the call so far"):
        keep = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
        events = [e for e, kept in zip(events, keep, strict=True) if kept] or events[:1]
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=len(events)), label="repeats")
    arrived = data.draw(st.permutations(events + repeats), label="arrival order")
    assert build_call(arrived) == build_call(events)


@settings(max_examples=200, deadline=None)
@given(call=calls())
def test_a_generated_call_is_read_as_it_happened(call: Scenario) -> None:
    model = build_call(reversed(call.events))
    assert fields(model, call.expected) == call.expected


@settings(max_examples=200, deadline=None)
@given(call=calls(summary=True))
def test_a_summary_alone_tells_what_the_whole_entry_tells(call: Scenario) -> None:
    expected = {name: call.expected[name] for name in SUMMARY_TELLS}
    assert fields(build_call(call.summary_only()), SUMMARY_TELLS) == expected

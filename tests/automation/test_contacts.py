"""Who last talked to a number: what a call makes a contact, and the memory of them
(newest wins in any order, bounded by the window)."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from automation.call_model import build_call
from automation.contacts import Contacts, contact_of, makes_contact
from mango.events import CallEvent
from tests.automation.calls import (
    EntryWriter,
    answered,
    missed_in_ivr,
    offered_and_missed,
    outgoing,
    to_group,
)

CALLER = "79990000001"
LINE = "74951112233"
EMPLOYEES = {"101": "1", "102": "2", "103": "3"}  # extension -> active employee
HOUR = 3600


def contact(w: EntryWriter) -> tuple[int, str, float] | None:
    return contact_of(build_call(w.events), EMPLOYEES, "RU")


def test_an_answered_call_is_a_contact_with_the_employee_who_answered() -> None:
    w = EntryWriter()
    answered(w, CALLER, LINE, ["101"])
    assert contact(w) == (int(CALLER), "1", w.events[-1].received_at)


def test_after_transfers_the_contact_is_the_last_employee_who_answered() -> None:
    w = EntryWriter()
    answered(w, CALLER, LINE, ["101", "102", "103"], transfers=2)
    assert contact(w) == (int(CALLER), "3", w.events[-1].received_at)


def test_a_call_our_route_sent_is_a_contact_too() -> None:
    w = EntryWriter()
    answered(w, CALLER, LINE, ["102"], routed=True, summary=False)  # the leg has no number
    assert contact(w) == (int(CALLER), "2", w.events[-1].received_at)


@pytest.mark.parametrize("picked_up", [True, False])
def test_an_outgoing_call_is_a_contact_with_its_caller_answered_or_not(picked_up: bool) -> None:
    w = EntryWriter()
    outgoing(w, "102", CALLER, LINE, picked_up=picked_up)
    assert contact(w) == (int(CALLER), "2", w.events[-1].received_at)


def test_a_group_call_is_a_contact_with_the_member_who_answered() -> None:
    w = EntryWriter()
    to_group(w, CALLER, LINE, ["101", "102", "103"], "g1", answered_by=1)
    assert contact(w) == (int(CALLER), "2", w.events[-1].received_at)


@pytest.mark.parametrize("missed", ["ivr", "offered", "group"])
def test_a_missed_call_is_no_contact(missed: str) -> None:
    w = EntryWriter()
    if missed == "ivr":
        missed_in_ivr(w, CALLER, LINE)
    elif missed == "offered":
        offered_and_missed(w, CALLER, LINE, ["101", "102"])
    else:
        to_group(w, CALLER, LINE, ["101", "102"], "g1")
    assert contact(w) is None


def test_an_extension_no_active_employee_has_is_no_contact() -> None:
    w = EntryWriter()
    answered(w, CALLER, LINE, ["555"])
    assert contact(w) is None


@pytest.mark.parametrize("kind", ["answered", "transferred", "outgoing", "outgoing-missed"])
def test_every_call_that_is_a_contact_has_a_notification_that_makes_it_one(kind: str) -> None:
    w = EntryWriter()
    if kind == "outgoing-missed":
        outgoing(w, "102", CALLER, LINE, picked_up=False, summary=False)
    elif kind == "outgoing":
        outgoing(w, "102", CALLER, LINE, picked_up=True, summary=False)
    else:
        answered(w, CALLER, LINE, ["101", "102"], transfers=kind == "transferred",
                 summary=False)
    assert contact(w) is not None
    assert any(makes_contact("call", CallEvent(dict(e.payload)), e.payload) for e in w.events)


@pytest.mark.parametrize("missed", ["ivr", "offered", "group"])
def test_no_notification_of_a_missed_call_makes_a_contact(missed: str) -> None:
    w = EntryWriter()
    if missed == "ivr":
        missed_in_ivr(w, CALLER, LINE)
    elif missed == "offered":
        offered_and_missed(w, CALLER, LINE, ["101", "102"])
    else:
        to_group(w, CALLER, LINE, ["101", "102"], "g1")
    for e in w.events:
        call = CallEvent(dict(e.payload)) if e.kind == "call" else None
        assert not makes_contact(e.kind, call, e.payload)


def test_the_summary_of_an_answered_or_outgoing_call_makes_a_contact() -> None:
    assert makes_contact("summary", None, {"call_direction": 1, "entry_result": 1})
    assert makes_contact("summary", None, {"call_direction": 2, "entry_result": 0})
    assert not makes_contact("summary", None, {"call_direction": 1, "entry_result": 0})
    assert not makes_contact("recording", None, {"entry_result": 1})


def test_a_contact_is_found_within_the_window_only() -> None:
    book = Contacts(72 * HOUR)
    book.remember(79990000001, "1", 1_000_000.0)
    assert book.find(79990000001, 1_000_000.0 + 72 * HOUR) == "1"
    assert book.find(79990000001, 1_000_000.0 + 72 * HOUR + 1) is None
    assert book.find(79990000002, 1_000_000.0) is None


@given(st.permutations(range(6)))
def test_the_newest_contact_wins_whatever_order_they_are_heard_in(order: list[int]) -> None:
    book = Contacts(72 * HOUR)
    for i in order:
        book.remember(79990000001, str(i), 1_000_000.0 + i)
    assert book.find(79990000001, 1_000_100.0) == "5"
    assert len(book) == 1


def test_a_sweep_forgets_what_is_past_the_window_and_keeps_the_rest() -> None:
    book = Contacts(HOUR)
    now = 1_000_000.0
    for i in range(100):
        book.remember(79990000000 + i, "1", now - 2 * HOUR + i * 60)  # the last 40 are fresh
    book.remember(79990000000, "2", now)  # heard again: fresh, and moved to the end
    assert book.sweep(now, limit=10) == 10
    assert book.sweep(now) == 49
    assert book.sweep(now) == 0
    assert len(book) == 41
    assert book.find(79990000000, now) == "2"


def test_a_full_pass_forgets_old_contacts_heard_out_of_time_order() -> None:
    book = Contacts(HOUR)
    now = 1_000_000.0
    book.remember(79990000001, "1", now)  # fresh, first in the dict
    book.remember(79990000002, "1", now - 2 * HOUR)  # old, heard late: behind a fresh one
    assert book.sweep(now) == 0  # the front is fresh: the sweep stops there
    book.forget_older(list(book.by_key), now)
    assert list(book.by_key) == [79990000001]


def bytes_per_number(count: int, seed: int = 1) -> float:
    """Memory of ``count`` remembered numbers, their keys included, as Python's
    allocator counts it (tracemalloc): what the dict, the key and the packed value
    of each number cost."""
    rng = random.Random(seed)
    employees = [str(1000 + i) for i in range(200)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        book = Contacts(72 * HOUR)
        at = 1_700_000_000.0
        for i in range(count):  # each key made here, as phone_key makes one per call
            book.remember(79_000_000_000 + rng.randrange(10**9), employees[i % 200],
                          at + i * 0.2)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / len(book)


def test_a_remembered_number_costs_about_a_hundred_bytes() -> None:
    assert bytes_per_number(100_000) < 140

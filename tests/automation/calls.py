"""Realistic calls as the PBX reports them, for tests of what is built from them.

``EntryWriter`` writes one entry's notifications leg state by leg state, with
growing ``seq`` and timestamps; the scenario functions play the typical calls
(answered, transferred, to a group, missed in the voice menu, missed after
being offered, outgoing) and return what the call model should say of them.
``calls()`` is the hypothesis strategy over all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from automation.call_model import JournalEvent

__all__ = ["SUMMARY_TELLS", "EntryWriter", "Scenario", "calls"]

T0 = 1_700_000_000

SUMMARY_TELLS = ("direction", "number", "line", "answered", "answered_at", "first_answered",
                 "missed_in_ivr", "missed_in_group", "caller_extension", "started_at",
                 "ended_at", "ended", "has_summary")
"""What a summary alone says as well as the whole entry does."""


class EntryWriter:
    """One entry's notifications, each stamped one step after the last."""

    __slots__ = ("entry_id", "events", "now", "seq", "step")

    def __init__(self, entry_id: str = "e1", *, start: int = T0,
                 step: Callable[[], int] = lambda: 1) -> None:
        self.entry_id = entry_id
        self.events: list[JournalEvent] = []
        self.now = start
        self.seq = 0
        self.step = step  # the seq gap to the next leg state (0 makes ties)

    def _add(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append(JournalEvent(kind, payload, received_at=self.now + 0.25))

    def leg(self, call_id: str, state: str, location: str, *, frm: dict[str, Any],
            to: dict[str, Any], command_id: str | None = None) -> int:
        """A leg changed state; returns its timestamp."""
        self.seq += self.step()
        self.now += 1
        payload: dict[str, Any] = {
            "entry_id": self.entry_id, "call_id": call_id, "timestamp": self.now,
            "seq": self.seq, "call_state": state, "location": location,
            "from": frm, "to": to, "disconnect_reason": 1110 if state == "Disconnected" else 0,
        }
        if command_id is not None:
            payload["command_id"] = command_id
        self._add("call", payload)
        return self.now

    def summary(self, fields: dict[str, Any]) -> None:
        self._add("summary", {"entry_id": self.entry_id, **fields})

    def recording(self, recording_id: str) -> None:
        """A recording starts, then is complete: two notifications, one recording."""
        for state in ("Started", "Completed"):
            self.now += 1
            self._add("recording", {"entry_id": self.entry_id, "recording_id": recording_id,
                                    "recording_state": state, "timestamp": self.now})

    def dtmf(self, digits: str) -> None:
        self.seq += 1
        self.now += 1
        self._add("dtmf", {"entry_id": self.entry_id, "call_id": "ivr", "seq": self.seq,
                           "timestamp": self.now, "dtmf": digits})


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    events: list[JournalEvent]
    expected: dict[str, Any]  # CallModel field -> value

    def legs_only(self) -> list[JournalEvent]:
        return [e for e in self.events if e.kind == "call"]

    def summary_only(self) -> list[JournalEvent]:
        return [e for e in self.events if e.kind == "summary"]


def _greeting(w: EntryWriter, caller: str,
              line: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The trigger: a call from outside appears in the voice menu, which answers it.

    Returns when it appeared, and the leg's parties."""
    frm, to = {"number": caller}, {"number": line, "line_number": line}
    started = w.leg("ivr", "Appeared", "ivr", frm=frm, to=to)
    w.leg("ivr", "Connected", "ivr", frm=frm, to=to)
    return started, frm, to


def answered(w: EntryWriter, caller: str, line: str, extensions: list[str], *,
             transfers: int = 0, routed: bool = False, from_extension: bool = False,
             summary: bool = True, talk_s: int = 0) -> dict[str, Any]:
    """Answered by ``extensions[0]``, then transferred along the next ``transfers``;
    the last conversation lasts ``talk_s`` more seconds, in which nothing is sent."""
    started, ivr_from, ivr_to = _greeting(w, caller, line)
    first = extensions[0]
    # a leg our route created carries the command's id and only the leg it came from
    frm: dict[str, Any] = ({"number": "", "taken_from_call_id": "ivr"} if routed else
                           {"number": caller, "taken_from_call_id": "ivr"})
    to: dict[str, Any] = {"extension": first, "line_number": line}
    command = "cmd-1" if routed else None
    w.leg("ab0", "Appeared", "abonent", frm=frm, to=to, command_id=command)
    w.leg("ivr", "Disconnected", "ivr", frm=ivr_from, to=ivr_to)
    talk = w.leg("ab0", "Connected", "abonent", frm=frm, to=to, command_id=command)
    prev, prev_frm, prev_to, prev_cmd = "ab0", frm, to, command
    for i in range(1, transfers + 1):
        leg = f"ab{i}"
        # the new leg's "from" is the client or the employee who transfers: either way
        # the call stays incoming
        new_frm: dict[str, Any] = {"taken_from_call_id": prev}
        new_frm.update({"extension": extensions[i - 1]} if from_extension else {"number": caller})
        new_to = {"extension": extensions[i], "was_transferred": True}
        w.leg(prev, "OnHold", "abonent", frm=prev_frm, to=prev_to, command_id=prev_cmd)
        w.leg(leg, "Appeared", "abonent", frm=new_frm, to=new_to)
        w.leg(prev, "Disconnected", "abonent", frm=prev_frm, to=prev_to, command_id=prev_cmd)
        w.leg(leg, "Connected", "abonent", frm=new_frm, to=new_to)
        prev, prev_frm, prev_to, prev_cmd = leg, new_frm, new_to, None
    w.now += talk_s
    ended = w.leg(prev, "Disconnected", "abonent", frm=prev_frm, to=prev_to, command_id=prev_cmd)
    if summary:
        w.summary({"call_direction": 1, "from": {"number": caller},
                   "to": {"extension": first, "number": line}, "line_number": line,
                   "create_time": started, "forward_time": started + 1, "talk_time": talk,
                   "end_time": ended, "entry_result": 1, "disconnect_reason": 1110})
    return _incoming(caller, line, started, ended, answered_at=talk, first=first,
                     last=extensions[transfers], offered=tuple(extensions[:transfers + 1]),
                     answered_by=tuple(extensions[:transfers + 1]))


def to_group(w: EntryWriter, caller: str, line: str, extensions: list[str], group: str, *,
             answered_by: int | None = None, summary: bool = True) -> dict[str, Any]:
    """Distributed to a group whose members are offered the call in turn."""
    started, ivr_from, ivr_to = _greeting(w, caller, line)
    q_frm = {"number": caller, "taken_from_call_id": "ivr"}
    q_to = {"acd_group": group, "line_number": line}
    w.leg("q", "Appeared", "queue", frm=q_frm, to=q_to)
    w.leg("ivr", "Disconnected", "ivr", frm=ivr_from, to=ivr_to)
    talk, who = 0, None
    offered = extensions if answered_by is None else extensions[:answered_by + 1]
    for i, ext in enumerate(offered):
        frm = {"number": caller, "taken_from_call_id": "q"}
        to = {"extension": ext, "acd_group": group}
        w.leg(f"g{i}", "Appeared", "abonent", frm=frm, to=to)
        if i == answered_by:
            w.leg("q", "Disconnected", "queue", frm=q_frm, to=q_to)
            talk, who = w.leg(f"g{i}", "Connected", "abonent", frm=frm, to=to), ext
        w.leg(f"g{i}", "Disconnected", "abonent", frm=frm, to=to)
    if who is None:
        w.leg("q", "Disconnected", "queue", frm=q_frm, to=q_to)
    ended = w.now
    if summary:
        w.summary({"call_direction": 1, "from": {"number": caller},
                   "to": ({"extension": who, "number": line} if who else
                          {"acd_group": group, "number": line}),
                   "line_number": line, "create_time": started, "talk_time": talk,
                   "end_time": ended, "entry_result": 1 if who else 0})
    return _incoming(caller, line, started, ended, answered_at=talk or None, first=who,
                     last=who, offered=tuple(offered), groups=(group,),
                     answered_by=(who,) if who else ())


def missed_in_ivr(w: EntryWriter, caller: str, line: str, *, digits: str = "",
                  summary: bool = True) -> dict[str, Any]:
    """The caller hung up in the voice menu (perhaps after pressing keys)."""
    started, frm, to = _greeting(w, caller, line)
    for digit in digits:
        w.dtmf(digit)
    ended = w.leg("ivr", "Disconnected", "ivr", frm=frm, to=to)
    if summary:
        w.summary({"call_direction": 1, "from": {"number": caller}, "to": {"number": line},
                   "line_number": line, "create_time": started, "talk_time": 0,
                   "end_time": ended, "entry_result": 0})
    expected = _incoming(caller, line, started, ended, answered_at=None, first=None, last=None)
    expected["dtmf"] = tuple(digits)
    return expected


def offered_and_missed(w: EntryWriter, caller: str, line: str, extensions: list[str], *,
                       summary: bool = True) -> dict[str, Any]:
    """Offered to each employee in turn; nobody answered."""
    started, ivr_from, ivr_to = _greeting(w, caller, line)
    for i, ext in enumerate(extensions):
        frm = {"number": caller, "taken_from_call_id": "ivr"}
        to = {"extension": ext, "line_number": line}
        w.leg(f"ab{i}", "Appeared", "abonent", frm=frm, to=to)
        w.leg(f"ab{i}", "Disconnected", "abonent", frm=frm, to=to)
    ended = w.leg("ivr", "Disconnected", "ivr", frm=ivr_from, to=ivr_to)
    if summary:
        w.summary({"call_direction": 1, "from": {"number": caller},
                   "to": {"extension": extensions[0], "number": line}, "line_number": line,
                   "create_time": started, "talk_time": 0, "end_time": ended,
                   "entry_result": 0})
    return _incoming(caller, line, started, ended, answered_at=None, first=None, last=None,
                     offered=tuple(extensions))


def outgoing(w: EntryWriter, extension: str, callee: str, line: str, *, picked_up: bool,
             summary: bool = True) -> dict[str, Any]:
    """An employee calls a number outside."""
    frm, to = {"extension": extension, "number": line}, {"number": callee}
    started = w.leg("out", "Appeared", "abonent", frm=frm, to=to)
    talk = w.leg("out", "Connected", "abonent", frm=frm, to=to) if picked_up else 0
    ended = w.leg("out", "Disconnected", "abonent", frm=frm, to=to)
    if summary:
        w.summary({"call_direction": 2, "from": {"extension": extension},
                   "to": {"number": callee}, "line_number": line, "create_time": started,
                   "talk_time": talk, "end_time": ended, "entry_result": 1 if picked_up else 0})
    return {
        "direction": "out", "number": callee, "line": line if summary else None,
        "answered": picked_up, "answered_at": talk or None, "first_answered": None,
        "last_handled": None, "answered_by": (), "offered": (), "groups": (),
        "missed_in_ivr": False,
        "missed_in_group": False, "caller_extension": extension, "started_at": started,
        "ended_at": ended, "ended": True, "has_summary": summary,
    }


def _incoming(caller: str, line: str, started: int, ended: int, *, answered_at: int | None,
              first: str | None, last: str | None, offered: tuple[str, ...] = (),
              groups: tuple[str, ...] = (), answered_by: tuple[str, ...] = ()
              ) -> dict[str, Any]:
    answered = first is not None
    return {
        "direction": "in", "number": caller, "line": line, "answered": answered,
        "answered_at": answered_at, "first_answered": first, "last_handled": last,
        "answered_by": answered_by, "offered": offered, "groups": groups,
        "missed_in_ivr": not answered and not offered and not groups,
        "missed_in_group": not answered and bool(groups), "caller_extension": None,
        "started_at": started, "ended_at": ended, "ended": True,
    }


_numbers = st.integers(79_000_000_000, 79_999_999_999).map(str)
_extensions = st.lists(st.integers(100, 999).map(str), min_size=4, max_size=4, unique=True)


@st.composite
def calls(draw: st.DrawFn, *, ties: bool = False, summary: bool | None = None) -> Scenario:
    """One call of a typical kind, with its expected model.

    ``ties`` lets consecutive leg states share a seq (the expected values assume
    they do not); ``summary`` forces the end-of-call summary in or out.
    """
    kind = draw(st.sampled_from(["answered", "transferred", "group", "ivr", "offered",
                                 "outgoing"]))
    caller, line = draw(_numbers), draw(_numbers)
    exts = draw(_extensions)
    with_summary = draw(st.booleans()) if summary is None else summary
    gaps = st.integers(0 if ties else 1, 3)
    w = EntryWriter(f"e{draw(st.integers(1, 10**9))}",
                    start=T0 + draw(st.integers(0, 10**6)), step=lambda: draw(gaps))
    expected: dict[str, Any]
    if kind == "answered":
        expected = answered(w, caller, line, exts, routed=draw(st.booleans()),
                            summary=with_summary)
    elif kind == "transferred":
        expected = answered(w, caller, line, exts, transfers=draw(st.integers(1, 3)),
                            from_extension=draw(st.booleans()), summary=with_summary)
    elif kind == "group":
        members = exts[:draw(st.integers(1, 4))]
        expected = to_group(w, caller, line, members, str(draw(st.integers(1, 99))),
                            answered_by=draw(st.none() | st.integers(0, len(members) - 1)),
                            summary=with_summary)
    elif kind == "ivr":
        expected = missed_in_ivr(w, caller, line, digits=draw(st.text("0123456789*#",
                                                                      max_size=3)),
                                 summary=with_summary)
    elif kind == "offered":
        expected = offered_and_missed(w, caller, line, exts[:draw(st.integers(1, 4))],
                                      summary=with_summary)
    else:
        expected = outgoing(w, exts[0], caller, line, picked_up=draw(st.booleans()),
                            summary=with_summary)
    recordings = [f"rec-{i}" for i in range(draw(st.integers(0, 2)))]
    for recording in recordings:
        w.recording(recording)
    expected.update(entry_id=w.entry_id, has_summary=with_summary, recordings=tuple(recordings))
    expected.setdefault("dtmf", ())
    return Scenario(kind, w.events, expected)

"""The call model: what one call (one PBX entry) was, read from its notifications.

The automation decides what to do in the CRM from what a call was: its
direction, the outside number, who it was offered to, who answered first and
who handled it last, whether it was missed in the voice menu or in a group.
``build_call`` reads that from every journaled notification of the entry.

The PBX delivers notifications late, twice and out of order, so the model is a
function of the *set* of events, never of their arrival: the legs are put in
one total order (``seq``, then the leg's id, then its state in the order
Appeared, Connected, OnHold, Disconnected, then the rest of what is read of
it) and repeats collapse. ``received_at`` is only used for the silence rule.

Where the end-of-call summary states a fact, it wins for the direction, the
result and the start and end times; the legs give the rest, and the summary
fills in what no leg showed (a model from a summary alone is complete enough).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["OPEN_SILENCE", "SILENCE", "CallModel", "Direction", "JournalEvent", "build_call"]

SILENCE = 600.0
"""Seconds without any notification after which a call with no summary, every leg of
which hung up, is final (its summary was lost)."""
OPEN_SILENCE = 12 * 3600.0
"""Seconds without any notification after which a call is final even with a leg still
open. A conversation or a wait in a queue sends nothing while it lasts, so silence
alone says nothing of such a call for as long as a working day; past this, a
``Disconnected`` was lost, and the call is finalised from what its legs say."""

Direction = Literal["in", "out", "internal", "unknown"]

_DIRECTIONS: dict[int, Direction] = {0: "internal", 1: "in", 2: "out"}
_STATE_RANK = {"Appeared": 0, "Connected": 1, "OnHold": 2, "Disconnected": 3}
_CONNECTED = 1
_DISCONNECTED = 3
_NO_PARTY: Mapping[str, Any] = {}  # never written to

# What is read of a leg, in its sort order: seq, call_id, state rank, timestamp,
# location, from.number, from.extension, to.number, to.extension, to.line_number,
# to.acd_group. Missing text is "", a missing number 0: tuples of one type sort.
_Leg = tuple[int, str, int, int, str, str, str, str, str, str, str]
# Of a summary: call_direction, entry_result (-1 when missing), create_time,
# talk_time, end_time, line_number, from.number, from.extension, to.number,
# to.extension, to.acd_group.
_Summary = tuple[int, int, int, int, int, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One journaled notification of an entry, as the PBX sent it."""

    kind: str  # "call", "summary", "recording" or "dtmf"; any other is not about a call
    payload: Mapping[str, Any]
    received_at: float  # when the service received it: for the silence rule only


@dataclass(frozen=True, slots=True, kw_only=True)
class CallModel:
    """What one call was, as far as its notifications so far tell.

    Flags about a missed call (``missed_in_ivr``, ``missed_in_group``) describe
    the call as it stands: act on them once ``is_final`` says it is over.
    """

    entry_id: str
    direction: Direction
    number: str | None  # the outside party: who called in, or who was called out
    line: str | None  # the company line dialled
    answered: bool
    answered_at: int | None  # Unix seconds; None unless answered
    last_handled: str | None  # extension of the last employee who answered (after transfers)
    # every extension that answered, in the order of their legs (seq), each once: the first
    # may have no CRM account (a receptionist who transfers), the rules take the first known
    answered_by: tuple[str, ...]
    offered: tuple[str, ...]  # extensions the call went to, in order, each once
    groups: tuple[str, ...]  # group ids it was distributed to, in order, each once
    missed_in_ivr: bool  # incoming, unanswered, never left the voice menu
    missed_in_group: bool  # incoming, unanswered, distributed to a group
    caller_extension: str | None  # the employee who made an outgoing call
    started_at: int | None
    ended_at: int | None  # the summary's end, else the last hang-up seen so far
    has_summary: bool
    ended: bool  # a summary came, or every leg seen hung up
    recordings: tuple[str, ...]
    dtmf: tuple[str, ...]  # digits pressed in the voice menu, in order
    last_received_at: float

    @property
    def first_answered(self) -> str | None:
        """The extension of the first employee who answered."""
        return self.answered_by[0] if self.answered_by else None

    def is_final(self, now: float, silence: float = SILENCE,
                 open_silence: float = OPEN_SILENCE) -> bool:
        """The call will not change: its summary came; or every leg hung up and the PBX
        has been silent about it for ``silence`` seconds (a summary can be lost: the call
        is then finalised from its legs); or, legs still open, for ``open_silence``."""
        quiet = now - self.last_received_at
        return (self.has_summary or (self.ended and quiet >= silence)
                or quiet >= max(silence, open_silence))


def _text(value: object) -> str:
    if type(value) is str:
        return value
    if type(value) is int:  # numbers and ids sometimes come as JSON numbers
        return str(value)
    return ""


def _num(value: object) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.isdigit() and len(value) < 16:
        return int(value)
    return 0


def _party(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else _NO_PARTY


def _leg(payload: Mapping[str, Any]) -> _Leg:
    caller, callee = _party(payload, "from"), _party(payload, "to")
    return (
        _num(payload.get("seq")),
        _text(payload.get("call_id")),
        _STATE_RANK.get(_text(payload.get("call_state")), 4),
        _num(payload.get("timestamp")),
        _text(payload.get("location")),
        _text(caller.get("number")),
        _text(caller.get("extension")),
        _text(callee.get("number")),
        _text(callee.get("extension")),
        _text(callee.get("line_number")),
        _text(callee.get("acd_group")),
    )


def _summary(payload: Mapping[str, Any]) -> _Summary:
    caller, callee = _party(payload, "from"), _party(payload, "to")
    direction, result = payload.get("call_direction"), payload.get("entry_result")
    return (
        direction if type(direction) is int else -1,
        result if type(result) is int else -1,
        _num(payload.get("create_time")),
        _num(payload.get("talk_time")),
        _num(payload.get("end_time")),
        _text(payload.get("line_number")),
        _text(caller.get("number")),
        _text(caller.get("extension")),
        _text(callee.get("number")),
        _text(callee.get("extension")),
        _text(callee.get("acd_group")),
    )


def build_call(events: Iterable[JournalEvent]) -> CallModel:
    """The model of one entry from all of its journaled events, in any order.

    Raises ``ValueError`` when there is no event, or the events are of several entries.
    """
    legs: set[_Leg] = set()
    summaries: set[_Summary] = set()
    recordings: dict[str, tuple[int, int]] = {}  # id -> earliest (timestamp, seq)
    presses: set[tuple[int, int, str, str]] = set()  # seq, timestamp, call_id, digits
    entries: set[str] = set()
    last_received = float("-inf")
    for event in events:
        kind, payload = event.kind, event.payload
        if kind == "call":
            legs.add(_leg(payload))
        elif kind == "summary":
            summaries.add(_summary(payload))
        elif kind == "recording":
            recording = _text(payload.get("recording_id"))
            if recording:
                key = (_num(payload.get("timestamp")), _num(payload.get("seq")))
                seen = recordings.get(recording)
                if seen is None or key < seen:
                    recordings[recording] = key
        elif kind == "dtmf":
            digits = _text(payload.get("dtmf"))
            if digits:
                presses.add((_num(payload.get("seq")), _num(payload.get("timestamp")),
                             _text(payload.get("call_id")), digits))
        else:
            continue  # not about a call
        entry = _text(payload.get("entry_id"))
        if entry:
            entries.add(entry)
        if event.received_at > last_received:
            last_received = event.received_at
    if len(entries) != 1:
        raise ValueError(f"a call model needs the events of one entry, got {len(entries)}")

    inferred: Direction | None = None
    caller_number = callee_number = calling_extension = line = ""
    started = hung_up = answered_at = 0
    answered = has_abonent = False
    last = ""
    offered: dict[str, None] = {}  # an ordered set
    answerers: dict[str, None] = {}  # an ordered set: the first is who answered first
    groups: dict[str, None] = {}
    legs_seen: set[str] = set()
    legs_closed: set[str] = set()
    for (_seq, call_id, state, at, location, from_number, from_ext, to_number, to_ext,
         line_number, group) in sorted(legs):
        legs_seen.add(call_id)
        if state == _DISCONNECTED:
            legs_closed.add(call_id)
            if at > hung_up:
                hung_up = at
        if at and (not started or at < started):
            started = at
        if line_number and not line:
            line = line_number
        if group:
            groups.setdefault(group)
        # The first leg that shows where the call came from gives its direction:
        # a transfer between employees later on does not make it internal.
        if from_number and not from_ext:
            if not caller_number:
                caller_number = from_number
            inferred = inferred or "in"
        elif from_ext and to_number and not to_ext:
            if not callee_number:
                callee_number, calling_extension = to_number, from_ext
            inferred = inferred or "out"
        elif from_ext and to_ext:
            inferred = inferred or "internal"
        if location == "abonent":
            has_abonent = True
            if to_ext:  # an Appeared leg is the offer; a later state stands in if it was lost
                offered.setdefault(to_ext)
            if state == _CONNECTED:
                if not answered:
                    answered, answered_at = True, at
                if to_ext:
                    last = to_ext
                    answerers.setdefault(to_ext)

    direction: Direction = inferred or "unknown"
    has_summary = bool(summaries)
    if has_summary:
        # Two different summaries of one entry should not happen; if they do,
        # the choice depends on their content, not on which came first.
        (s_direction, s_result, s_created, s_talk, s_ended, s_line, s_from_number,
         s_from_ext, s_to_number, s_to_ext, s_group) = max(summaries)
        direction = _DIRECTIONS.get(s_direction, direction)
        if s_result in (0, 1):
            answered = s_result == 1
        started = s_created or started
        hung_up = s_ended or hung_up
        answered_at = answered_at or s_talk
        line = line or s_line
        caller_number = caller_number or s_from_number
        callee_number = callee_number or s_to_number
        calling_extension = calling_extension or s_from_ext
        # the summary's "to": who answered first, or the first link of the forwarding chain
        if s_to_ext and not offered:
            offered[s_to_ext] = None
        if s_group and not groups:
            groups[s_group] = None
        if answered and s_to_ext and not answerers:
            last = s_to_ext
            answerers[s_to_ext] = None

    incoming_missed = direction == "in" and not answered
    return CallModel(
        entry_id=entries.pop(),
        direction=direction,
        number=(caller_number if direction == "in" else
                callee_number if direction == "out" else "") or None,
        line=line or None,
        answered=answered,
        answered_at=(answered_at or None) if answered else None,
        last_handled=last or None,
        answered_by=tuple(answerers),
        offered=tuple(offered),
        groups=tuple(groups),
        missed_in_ivr=incoming_missed and not (has_abonent or offered or groups),
        missed_in_group=incoming_missed and bool(groups),
        caller_extension=(calling_extension or None) if direction == "out" else None,
        started_at=started or None,
        ended_at=hung_up or None,
        has_summary=has_summary,
        ended=has_summary or (bool(legs_seen) and len(legs_closed) == len(legs_seen)),
        recordings=tuple(sorted(recordings, key=lambda rid: (recordings[rid], rid))),
        dtmf=tuple(press[3] for press in sorted(presses)),
        last_received_at=last_received,
    )

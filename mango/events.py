"""PBX notifications: the JSON bodies, checked field by field.

Every field the service reads must have the JSON type the VPBX API sends it
with: ids, numbers, extensions and states are strings, ``seq``, times and
codes are integers (a ``true`` or ``1.5`` is not), ``was_transferred`` is a
boolean, ``from``/``to`` are objects. Nothing is coerced: a ``"1"`` for
``seq`` or a ``79161234567`` for ``from.number`` is not what the PBX sends, and
taking it would journal and route an event the PBX never made. Anything else is
refused with a short reason naming the field (``BadRequest``, a 400), never an
exception that would become a 500. ``null`` is the same as absent; fields the
service does not read are ignored, whatever their type.

These checks run on every notification: ``isinstance``/``type`` checks over
module-level key tuples, nothing built unless the input is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["BadRequest", "CallEvent", "check_fields", "parse_call"]

_INT_LIMIT = 2**53
MAX_TEXT = 256
CALL_STATES = frozenset({"Appeared", "Connected", "OnHold", "Disconnected"})

_ABSENT: Mapping[str, Any] = MappingProxyType({})  # an absent from/to, shared, read only
_PARTY_TEXT = ("number", "extension", "line_number", "acd_group", "taken_from_call_id")
_SUMMARY_INTS = ("call_direction", "entry_result", "create_time", "forward_time",
                 "talk_time", "end_time", "disconnect_reason")


class BadRequest(ValueError):
    """Malformed input; the message is the reason given back in the 400."""


def _str(obj: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{where}{key} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{where}{key} must be a string")
    if len(value) > MAX_TEXT:  # ids and numbers are short; a long one is not the PBX's
        raise BadRequest(f"{where}{key} is longer than {MAX_TEXT} characters")
    return value


def _int(obj: Mapping[str, Any], key: str, *, required: bool = False) -> int | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if type(value) is not int:  # exact: a bool is an int subclass, and true is not a number
        if isinstance(value, float):
            raise BadRequest(f"{key} must be a whole number")
        raise BadRequest(f"{key} must be a number")
    if not -_INT_LIMIT < value < _INT_LIMIT:
        raise BadRequest(f"{key} is out of range")
    return value


def _party(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """``from`` or ``to``, its text fields and ``was_transferred`` checked."""
    value = obj.get(key)
    if value is None:
        return _ABSENT
    if not isinstance(value, dict):
        raise BadRequest(f"{key} must be an object")
    for field in _PARTY_TEXT:  # inlined: _str is called only to refuse
        text = value.get(field)
        if text is not None and (not isinstance(text, str) or len(text) > MAX_TEXT):
            _str(value, field, where)
    transferred = value.get("was_transferred")
    if transferred is not None and not isinstance(transferred, bool):
        raise BadRequest(f"{where}was_transferred must be a boolean")
    return value


class CallEvent:
    """One ``events/call``: what routing and the journal need of it."""

    __slots__ = ("call_id", "call_state", "command_id", "entry_id", "from_extension",
                 "from_number", "line_number", "location", "seq", "to_extension", "to_number")

    def __init__(self, body: dict[str, Any]) -> None:
        self.entry_id = _str(body, "entry_id", "", required=True) or ""
        self.call_id = _str(body, "call_id", "", required=True) or ""
        if not self.entry_id or not self.call_id:
            raise BadRequest("entry_id and call_id must not be empty")
        state = body.get("call_state")
        if not isinstance(state, str) and state is not None:  # a list is not even hashable
            raise BadRequest("call_state must be a string")
        if state not in CALL_STATES:
            raise BadRequest("call_state must be Appeared, Connected, OnHold or Disconnected")
        self.call_state: str = state
        self.seq = _int(body, "seq") or 0
        _int(body, "timestamp")
        _int(body, "disconnect_reason")
        self.location = _str(body, "location", "") or ""
        self.command_id = _str(body, "command_id", "")
        caller, callee = _party(body, "from", "from."), _party(body, "to", "to.")
        # checked by _party: each a str of at most MAX_TEXT characters, or None
        self.from_number: str | None = caller.get("number")
        self.from_extension: str | None = caller.get("extension")
        self.to_number: str | None = callee.get("number")
        self.to_extension: str | None = callee.get("extension")
        self.line_number: str | None = callee.get("line_number")

    @property
    def is_trigger(self) -> bool:
        """A call from outside, in the greeting, that no command of ours created."""
        return (
            self.call_state == "Appeared"
            and self.location == "ivr"
            and bool(self.from_number)
            and not self.from_extension
            and not self.command_id
        )


def parse_call(body: dict[str, Any]) -> CallEvent:
    return CallEvent(body)


def _entry(body: Mapping[str, Any]) -> str:
    """The call the notification is of: an empty id would be no call's (the journal kept
    it, and nothing could ever find or plan it)."""
    entry = _str(body, "entry_id", "", required=True)
    if not entry:
        raise BadRequest("entry_id must not be empty")
    return entry


def check_fields(kind: str, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """Check the body of a non-call notification; return its (entry_id, command_id)."""
    if kind == "summary":
        entry = _entry(body)
        _str(body, "line_number", "")
        for key in _SUMMARY_INTS:  # inlined: _int is called only to refuse
            number = body.get(key)
            if number is not None and (type(number) is not int
                                       or not -_INT_LIMIT < number < _INT_LIMIT):
                _int(body, key)
        _party(body, "from", "from.")
        _party(body, "to", "to.")
        return entry, None
    if kind in ("recording", "dtmf"):
        return _entry(body), None
    if kind == "result":
        command = _str(body, "command_id", "", required=True)
        _int(body, "result", required=True)
        return None, command
    return None, None

"""PBX notifications: the form envelope and the JSON bodies, checked field by field.

Anything that is not what the VPBX API sends is refused with a short reason
(``BadRequest``), never an exception that would become a 500. Fields the
service does not use are ignored.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BadRequest", "CallEvent", "check_fields", "parse_call"]

_INT_LIMIT = 2**53
MAX_TEXT = 256
CALL_STATES = frozenset({"Appeared", "Connected", "OnHold", "Disconnected"})


class BadRequest(ValueError):
    """Malformed input; the message is the reason given back in the 400."""


def _str(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{where}{key} is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # numbers sometimes come as JSON numbers
    if not isinstance(value, str):
        raise BadRequest(f"{where}{key} must be a string")
    if len(value) > MAX_TEXT:  # ids and numbers are short; a long one is not the PBX's
        raise BadRequest(f"{where}{key} is longer than {MAX_TEXT} characters")
    return value


def _int(obj: dict[str, Any], key: str, *, required: bool = False) -> int | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if isinstance(value, bool):
        raise BadRequest(f"{key} must be a number")
    if isinstance(value, str) and value.isdigit() and len(value) < 16:
        value = int(value)
    if not isinstance(value, int):
        raise BadRequest(f"{key} must be a number")
    if not -_INT_LIMIT < value < _INT_LIMIT:
        raise BadRequest(f"{key} is out of range")
    return value


def _party(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{key} must be an object")
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
        if not isinstance(state, str) or state not in CALL_STATES:
            raise BadRequest("call_state must be Appeared, Connected, OnHold or Disconnected")
        self.call_state: str = state
        self.seq = _int(body, "seq") or 0
        _int(body, "timestamp")
        self.location = _str(body, "location", "") or ""
        self.command_id = _str(body, "command_id", "")
        caller, callee = _party(body, "from"), _party(body, "to")
        self.from_number = _str(caller, "number", "from.")
        self.from_extension = _str(caller, "extension", "from.")
        self.to_number = _str(callee, "number", "to.")
        self.to_extension = _str(callee, "extension", "to.")
        self.line_number = _str(callee, "line_number", "to.")

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


def check_fields(kind: str, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """Check the body of a non-call notification; return its (entry_id, command_id)."""
    if kind == "summary":
        entry = _str(body, "entry_id", "", required=True)
        for key in ("call_direction", "entry_result", "create_time", "forward_time",
                    "talk_time", "end_time", "disconnect_reason"):
            _int(body, key)
        _party(body, "from")
        _party(body, "to")
        return entry, None
    if kind in ("recording", "dtmf"):
        return _str(body, "entry_id", "", required=True), None
    if kind == "result":
        command = _str(body, "command_id", "", required=True)
        _int(body, "result", required=True)
        return None, command
    return None, None

"""An account's integration settings (PROTOCOLS §5): defaults, validation, merge.

The stored JSON may lack keys added later; ``Settings.from_stored`` fills them
with defaults. ``merge_update`` checks a PUT body key by key and raises
``SettingsError`` naming the first bad field; the caller stores nothing then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from lookup.phones import phone_key

__all__ = ["DealTarget", "LastContactTarget", "Settings", "SettingsError", "merge_update"]

_CREATE_MODES = ("nothing", "client", "client_and_deal")
_REPEAT_MODES = ("record_only", "always_deal", "deal_if_none_open")
_PHONE_FORMATS = ("e164", "international", "national", "digits")
_MAX_LINES = 100  # a company has a handful of lines; a longer list is a mistake
_HOURS = (1, 720)  # last-contact window: an hour to thirty days
_DEFAULT_HOURS = 72


class SettingsError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True, slots=True, kw_only=True)
class DealTarget:
    program_id: str | None = None
    state_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EmployeeTarget:
    enabled: bool = False
    employee_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LastContactTarget:
    enabled: bool = False
    within_hours: int = _DEFAULT_HOURS


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    route_to_responsible: bool = True
    accepted_incoming: str = "nothing"
    accepted_deal: DealTarget = field(default_factory=DealTarget)
    missed_incoming: str = "nothing"
    missed_deal: DealTarget = field(default_factory=DealTarget)
    repeat_calls: str = "record_only"
    source_line: bool = False
    update_responsible_on_transfer: bool = False
    missed_in_ivr: EmployeeTarget = field(default_factory=EmployeeTarget)
    missed_in_group: EmployeeTarget = field(default_factory=EmployeeTarget)
    outgoing_create_client: bool = False
    phone_format: str = "international"
    default_region: str = "RU"
    timezone: str = "Europe/Moscow"
    dry_run: bool = False
    skip_busy_responsible: bool = False
    route_unknown_to_last_contact: LastContactTarget = field(default_factory=LastContactTarget)
    route_lines: tuple[str, ...] = ()  # as written; () routes calls to every line
    # route_lines as canonical keys, made once per settings object: the hot path only
    # looks a trigger's line up in it. Derived, so not part of the stored JSON.
    route_line_keys: frozenset[int] = field(default=frozenset(), init=False, repr=False,
                                            compare=False)

    def __post_init__(self) -> None:
        keys = (phone_key(line, self.default_region) for line in self.route_lines)
        object.__setattr__(self, "route_line_keys", frozenset(k for k in keys if k is not None))

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Settings:
        """Settings from the database; unknown keys are ignored, bad ones keep defaults.

        Key by key, so one stale or bad value never resets the others.
        """
        good: dict[str, Any] = {}
        for key, value in stored.items():
            check = _FIELDS.get(key)
            if check is None:
                continue
            try:
                good[key] = check(key, value)
            except SettingsError:
                continue
        return replace(cls(), **good)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["route_line_keys"]
        out["route_lines"] = list(self.route_lines)
        return out


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(name, "must be true or false")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in options:
            raise SettingsError(name, f"must be one of {', '.join(options)}")
        return str(value)

    return check


def _printable(value: str) -> bool:
    """No control characters: PostgreSQL's jsonb refuses NUL, and no id or number has any."""
    return not any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def _id(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or not _printable(value) \
            or len(value) > 100:
        raise SettingsError(name, "must be a non-empty string id or null")
    return value


def _deal(name: str, value: Any) -> DealTarget:
    if not isinstance(value, dict) or set(value) - {"program_id", "state_id"}:
        raise SettingsError(name, "must be an object with program_id and state_id")
    return DealTarget(
        program_id=_id(f"{name}.program_id", value.get("program_id")),
        state_id=_id(f"{name}.state_id", value.get("state_id")),
    )


def _employee(name: str, value: Any) -> EmployeeTarget:
    if not isinstance(value, dict) or set(value) - {"enabled", "employee_id"}:
        raise SettingsError(name, "must be an object with enabled and employee_id")
    return EmployeeTarget(
        enabled=_bool(f"{name}.enabled", value.get("enabled", False)),
        employee_id=_id(f"{name}.employee_id", value.get("employee_id")),
    )


def _last_contact(name: str, value: Any) -> LastContactTarget:
    if not isinstance(value, dict) or set(value) - {"enabled", "within_hours"}:
        raise SettingsError(name, "must be an object with enabled and within_hours")
    hours = value.get("within_hours", _DEFAULT_HOURS)
    low, high = _HOURS
    if type(hours) is not int or not low <= hours <= high:  # exact: true is not a number
        raise SettingsError(f"{name}.within_hours", f"must be a whole number from {low} to {high}")
    return LastContactTarget(enabled=_bool(f"{name}.enabled", value.get("enabled", False)),
                             within_hours=hours)


def _lines(name: str, value: Any) -> tuple[str, ...]:
    """A list of phone numbers as written; whether each is one is checked in ``_check_rules``,
    where the account's region (which may come in the same update) is known."""
    if not isinstance(value, list) or len(value) > _MAX_LINES:
        raise SettingsError(name, f"must be a list of at most {_MAX_LINES} phone numbers")
    for line in value:
        if not isinstance(line, str) or not line.strip() or len(line) > 40 \
                or not _printable(line):
            raise SettingsError(name, "each line must be a phone number written as a string")
    return tuple(value)


def _region(name: str, value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(name, "must be an ISO 3166 region code such as RU")
    return value.upper()


def _zone(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(name, "must be an IANA time zone such as Europe/Moscow")
    try:
        ZoneInfo(value)
    # OSError: a name that is a directory of the zone database ("Europe") or too long for
    # a file name is looked up as a file too
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise SettingsError(name, "must be an IANA time zone such as Europe/Moscow") from None
    return value


_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "route_to_responsible": _bool,
    "accepted_incoming": _choice(_CREATE_MODES),
    "accepted_deal": _deal,
    "missed_incoming": _choice(_CREATE_MODES),
    "missed_deal": _deal,
    "repeat_calls": _choice(_REPEAT_MODES),
    "source_line": _bool,
    "update_responsible_on_transfer": _bool,
    "missed_in_ivr": _employee,
    "missed_in_group": _employee,
    "outgoing_create_client": _bool,
    "phone_format": _choice(_PHONE_FORMATS),
    "default_region": _region,
    "timezone": _zone,
    "dry_run": _bool,
    "skip_busy_responsible": _bool,
    "route_unknown_to_last_contact": _last_contact,
    "route_lines": _lines,
}


def merge_update(
    current: Settings,
    update: Mapping[str, Any],
    *,
    known_employees: Callable[[str], bool] | None = None,
    known_deal: Callable[[DealTarget], bool] | None = None,
) -> Settings:
    """``current`` with each key of ``update`` replaced whole; raises on the first bad field.

    ``known_employees``/``known_deal`` check ids against the CRM copy when given.
    """
    changes: dict[str, Any] = {}
    for key, value in update.items():
        check = _FIELDS.get(key)
        if check is None:
            raise SettingsError(key, "is not a setting")
        changes[key] = check(key, value)
    merged = replace(current, **changes)
    _check_rules(merged, known_employees, known_deal)
    return merged


def _check_rules(
    s: Settings,
    known_employee: Callable[[str], bool] | None,
    known_deal: Callable[[DealTarget], bool] | None,
) -> None:
    needs_accepted = s.accepted_incoming == "client_and_deal" or s.repeat_calls != "record_only"
    needs_missed = s.missed_incoming == "client_and_deal" or s.repeat_calls != "record_only"
    for name, needed, deal in (
        ("accepted_deal", needs_accepted, s.accepted_deal),
        ("missed_deal", needs_missed, s.missed_deal),
    ):
        if not needed:
            continue
        if deal.program_id is None or deal.state_id is None:
            raise SettingsError(name, "program_id and state_id are required for this mode")
        if known_deal is not None and not known_deal(deal):
            raise SettingsError(name, "unknown program, or the state is not one of its states")
    for line in s.route_lines:
        if phone_key(line, s.default_region) is None:
            raise SettingsError("route_lines", f"{line!r} is not a phone number")
    targets = (("missed_in_ivr", s.missed_in_ivr), ("missed_in_group", s.missed_in_group))
    for name, target in targets:
        if not target.enabled:
            continue
        if target.employee_id is None:
            raise SettingsError(f"{name}.employee_id", "is required when enabled")
        if known_employee is not None and not known_employee(target.employee_id):
            raise SettingsError(f"{name}.employee_id", "is not a known employee")

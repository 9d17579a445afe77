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

__all__ = ["DealTarget", "Settings", "SettingsError", "merge_update"]

_CREATE_MODES = ("nothing", "client", "client_and_deal")
_REPEAT_MODES = ("record_only", "always_deal", "deal_if_none_open")
_PHONE_FORMATS = ("e164", "international", "national", "digits")


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
        return asdict(self)


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


def _id(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
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


def _region(name: str, value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(name, "must be an ISO 3166 region code such as RU")
    return value.upper()


def _zone(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SettingsError(name, "must be an IANA time zone such as Europe/Moscow")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
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
    targets = (("missed_in_ivr", s.missed_in_ivr), ("missed_in_group", s.missed_in_group))
    for name, target in targets:
        if not target.enabled:
            continue
        if target.employee_id is None:
            raise SettingsError(f"{name}.employee_id", "is required when enabled")
        if known_employee is not None and not known_employee(target.employee_id):
            raise SettingsError(f"{name}.employee_id", "is not a known employee")

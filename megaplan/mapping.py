"""The whole JSON mapping between Megaplan API v3 objects and our records.

Every v3 field name the service reads or writes is spelled here and only
here, so a renamed field is a one-line change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from megaplan.errors import MappingError

__all__ = [
    "CLIENT_LIST_FIELDS",
    "EMPLOYEE_LIST_FIELDS",
    "CallInfo",
    "CallRoute",
    "CallType",
    "Client",
    "ClientKind",
    "Deal",
    "Employee",
    "ExtraField",
    "MappingError",
    "Program",
    "ProgramState",
    "Responsible",
    "ResponsibleKind",
    "call_info_payload",
    "comment_payload",
    "contractor_human_payload",
    "deal_payload",
    "format_datetime",
    "page_after",
    "parse_call_route",
    "parse_client",
    "parse_datetime",
    "parse_deal",
    "parse_employee",
    "parse_extra_field",
    "parse_program",
    "parse_program_state",
    "sort_by_time_updated_desc",
]

Json = dict[str, Any]
ResponsibleKind = Literal["employee", "client", "group"]
ClientKind = Literal["human", "company"]
CallType = Literal["in", "out", "miss"]

# --- v3 field names -------------------------------------------------------
F_CONTENT_TYPE = "contentType"
F_ID = "id"
F_NAME = "name"
F_FIRST_NAME = "firstName"
F_MIDDLE_NAME = "middleName"
F_LAST_NAME = "lastName"
F_CONTACT_INFO = "contactInfo"
F_CI_TYPE = "type"
F_CI_VALUE = "value"
F_CI_MAIN = "isMain"
F_EMAIL = "email"
F_IS_WORKING = "isWorking"
F_FIRE_DAY = "fireDay"
F_CAN_LOGIN = "canLogin"
F_RESPONSIBLES = "responsibles"
F_IS_DROPPED = "isDropped"
F_TIME_UPDATED = "timeUpdated"
F_TIME_CREATED = "timeCreated"
F_HR_NAME = "hrName"
F_STATES = "states"
F_STATE_TYPE = "type"
F_IS_ENTRY = "isEntry"
F_PROGRAM = "program"
F_STATE = "state"
F_CONTRACTOR = "contractor"
F_MANAGER = "manager"
F_DATE_VALUE = "value"
F_CONTENT = "content"

CT_EMPLOYEE = "Employee"
CT_HUMAN = "ContractorHuman"
CT_COMPANY = "ContractorCompany"
CT_CONTACT_INFO = "ContactInfo"
CT_DATETIME = "DateTime"
CT_PROGRAM = "Program"
CT_PROGRAM_STATE = "ProgramState"
CT_DEAL = "Deal"
CT_CALL_INFO = "CallInfo"
CT_COMMENT = "Comment"
CT_SORT_FIELD = "SortField"
CI_PHONE = "phone"
CI_EMAIL = "email"
CUSTOM_FIELD_MARK = "CustomField"  # v3 names custom fields like Category183CustomFieldRegion

_RESPONSIBLE_KINDS: dict[str, ResponsibleKind] = {
    CT_EMPLOYEE: "employee",
    CT_HUMAN: "client",
    CT_COMPANY: "client",
    "Group": "group",
    "Department": "group",
}
_CLIENT_KINDS: dict[str, ClientKind] = {CT_HUMAN: "human", CT_COMPANY: "company"}
_CLIENT_CONTENT_TYPES: dict[ClientKind, str] = {"human": CT_HUMAN, "company": CT_COMPANY}

# What routing needs from a list, so 100,000 clients cost ~1,000 small pages.
CLIENT_LIST_FIELDS: tuple[str, ...] = (
    F_ID,
    F_CONTENT_TYPE,
    F_NAME,
    F_FIRST_NAME,
    F_LAST_NAME,
    F_CONTACT_INFO,
    F_RESPONSIBLES,
    F_IS_DROPPED,
    F_TIME_UPDATED,
)
EMPLOYEE_LIST_FIELDS: tuple[str, ...] = (
    F_ID,
    F_CONTENT_TYPE,
    F_NAME,
    F_FIRST_NAME,
    F_MIDDLE_NAME,
    F_LAST_NAME,
    F_IS_WORKING,
    F_FIRE_DAY,
    F_CAN_LOGIN,
    F_CONTACT_INFO,
    F_EMAIL,
)


# --- records --------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Employee:
    id: str
    name: str
    email: str | None
    active: bool
    phones: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Responsible:
    kind: ResponsibleKind
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Client:
    id: str
    kind: ClientKind
    name: str
    phones: tuple[str, ...]
    responsibles: tuple[Responsible, ...]
    dropped: bool = False
    time_updated: datetime | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramState:
    id: str
    name: str
    type: str
    is_entry: bool

    @property
    def is_open(self) -> bool:
        """A deal in this state is still open (``active``; closed are positive/negative)."""
        return self.type == "active"


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    id: str
    name: str
    states: tuple[ProgramState, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtraField:
    name: str
    hr_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Deal:
    id: str
    name: str
    program_id: str | None
    state_id: str | None
    state_type: str | None  # known when the CRM embeds the state; else look it up in Program
    contractor_id: str | None = None
    manager_id: str | None = None
    time_created: datetime | None = None

    @property
    def is_open(self) -> bool | None:
        return None if self.state_type is None else self.state_type == "active"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInfo:
    """One finished call to put on a client's card; ``provider_id`` is our entry_id."""

    provider_id: str
    type: CallType
    from_phone: str | None
    to_phone: str | None
    time_from: datetime
    time_to: datetime
    from_user: str | None = None  # Employee id
    to_user: str | None = None  # Employee id
    record_links: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRoute:
    """The CRM's own per-call answer (``GET /api/v3/callRoute``), the benchmark baseline."""

    phone: str
    client_id: str | None
    employee_id: str | None
    extension: str | None
    reason: str | None


# --- readers --------------------------------------------------------------
def _id_of(obj: Any) -> str | None:
    if isinstance(obj, Mapping):
        raw = obj.get(F_ID)
        if isinstance(raw, str) and raw:
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            return str(raw)
    return None


def _require_object(obj: Any, what: str) -> tuple[Mapping[str, Any], str]:
    if not isinstance(obj, Mapping):
        raise MappingError(None, f"{what} is not an object")
    oid = _id_of(obj)
    if oid is None:
        raise MappingError(None, f"{what} has no id")
    return obj, oid


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return _storable(value) if isinstance(value, str) else ""


def _storable(value: str) -> str:
    """Without NUL, which PostgreSQL's text refuses: one such character in one CRM record
    failed every batch of the copy it fell in, pass after pass."""
    return value.replace("\x00", "").strip()


def _flag(obj: Mapping[str, Any], key: str, default: bool, oid: str) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MappingError(oid, f"{key} is not a boolean")
    return value


def _full_name(obj: Mapping[str, Any], *keys: str) -> str:
    return " ".join(p for p in (_text(obj, k) for k in keys) if p)


def _contacts(obj: Mapping[str, Any], kind: str, oid: str) -> tuple[str, ...]:
    raw = obj.get(F_CONTACT_INFO) or []
    if not isinstance(raw, list):
        raise MappingError(oid, f"{F_CONTACT_INFO} is not a list")
    main: list[str] = []
    rest: list[str] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise MappingError(oid, f"{F_CONTACT_INFO} entry is not an object")
        if item.get(F_CI_TYPE) != kind:
            continue
        value = item.get(F_CI_VALUE)
        if not isinstance(value, str) or not (value := _storable(value)):
            continue
        (main if item.get(F_CI_MAIN) is True else rest).append(value)
    return (*main, *rest)


def parse_datetime(value: Any) -> datetime | None:
    """v3 dates come as ISO-8601 strings or ``{"contentType": "DateTime", "value": ...}``.

    A date without an offset is taken as UTC. Raises ``ValueError`` when unreadable.
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = value.get(F_DATE_VALUE)
        if value is None:
            return None
    if not isinstance(value, str):
        raise ValueError("date is neither a string nor a DateTime object")
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_datetime(value: datetime) -> Json:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return {F_CONTENT_TYPE: CT_DATETIME, F_DATE_VALUE: aware.isoformat()}


def parse_employee(obj: Any) -> Employee:
    data, oid = _require_object(obj, "employee")
    name = _text(data, F_NAME) or _full_name(data, F_FIRST_NAME, F_MIDDLE_NAME, F_LAST_NAME)
    emails = _contacts(data, CI_EMAIL, oid)
    email = emails[0] if emails else (_text(data, F_EMAIL) or None)
    active = (
        _flag(data, F_IS_WORKING, True, oid)
        and not data.get(F_FIRE_DAY)
        and _flag(data, F_CAN_LOGIN, True, oid)
    )
    return Employee(
        id=oid, name=name, email=email, active=active, phones=_contacts(data, CI_PHONE, oid)
    )


def _responsibles(data: Mapping[str, Any], oid: str) -> tuple[Responsible, ...]:
    raw = data.get(F_RESPONSIBLES) or []
    if not isinstance(raw, list):
        raise MappingError(oid, f"{F_RESPONSIBLES} is not a list")
    out: list[Responsible] = []
    for ref in raw:
        ref_id = _id_of(ref)
        if ref_id is None:
            raise MappingError(oid, "a responsible has no id")
        kind = _RESPONSIBLE_KINDS.get(str(ref.get(F_CONTENT_TYPE)))
        if kind is None:
            raise MappingError(oid, f"unknown responsible type {ref.get(F_CONTENT_TYPE)!r}")
        out.append(Responsible(kind=kind, id=ref_id))
    return tuple(out)


def _extra_value(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get(F_DATE_VALUE)
    if value is None or isinstance(value, list | dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_client(obj: Any, extra_fields: Iterable[str] = ()) -> Client:
    """Custom fields: those named in ``extra_fields`` and any ``…CustomField…`` key."""
    data, oid = _require_object(obj, "contractor")
    kind = _CLIENT_KINDS.get(str(data.get(F_CONTENT_TYPE)))
    if kind is None:
        raise MappingError(oid, f"unknown contractor type {data.get(F_CONTENT_TYPE)!r}")
    name = _text(data, F_NAME)
    if not name and kind == "human":
        name = _full_name(data, F_FIRST_NAME, F_MIDDLE_NAME, F_LAST_NAME)
    try:
        time_updated = parse_datetime(data.get(F_TIME_UPDATED))
    except ValueError as exc:
        raise MappingError(oid, f"bad {F_TIME_UPDATED}: {exc}") from None
    wanted = set(extra_fields)
    extra: dict[str, str] = {}
    for key, value in data.items():
        if key in wanted or CUSTOM_FIELD_MARK in key:
            text = _extra_value(value)
            if text is not None:
                extra[key] = text
    return Client(
        id=oid,
        kind=kind,
        name=name,
        phones=_contacts(data, CI_PHONE, oid),
        responsibles=_responsibles(data, oid),
        dropped=_flag(data, F_IS_DROPPED, False, oid),
        time_updated=time_updated,
        extra=extra,
    )


def parse_program_state(obj: Any) -> ProgramState:
    data, oid = _require_object(obj, "program state")
    return ProgramState(
        id=oid,
        name=_text(data, F_NAME),
        type=_text(data, F_STATE_TYPE),
        is_entry=_flag(data, F_IS_ENTRY, False, oid),
    )


def parse_program(obj: Any) -> Program:
    data, oid = _require_object(obj, "program")
    raw_states = data.get(F_STATES) or []
    if not isinstance(raw_states, list):
        raise MappingError(oid, f"{F_STATES} is not a list")
    try:
        states = tuple(parse_program_state(s) for s in raw_states)
    except MappingError as exc:
        raise MappingError(oid, f"state: {exc.reason}") from None
    return Program(id=oid, name=_text(data, F_NAME), states=states)


def parse_extra_field(obj: Any) -> ExtraField:
    if not isinstance(obj, Mapping):
        raise MappingError(None, "extra field is not an object")
    name = _text(obj, F_NAME)
    if not name:
        raise MappingError(_id_of(obj), "extra field has no name")
    return ExtraField(name=name, hr_name=_text(obj, F_HR_NAME) or name)


def parse_deal(obj: Any) -> Deal:
    data, oid = _require_object(obj, "deal")
    state = data.get(F_STATE)
    state_type = _text(state, F_STATE_TYPE) if isinstance(state, Mapping) else ""
    return Deal(
        id=oid,
        name=_text(data, F_NAME),
        program_id=_id_of(data.get(F_PROGRAM)),
        state_id=_id_of(state),
        state_type=state_type or None,
        contractor_id=_id_of(data.get(F_CONTRACTOR)),
        manager_id=_id_of(data.get(F_MANAGER)),
        time_created=parse_datetime(data.get(F_TIME_CREATED)),
    )


def parse_call_route(obj: Any) -> CallRoute:
    if not isinstance(obj, Mapping):
        raise MappingError(None, "callRoute is not an object")
    phone = _text(obj, "phone")
    extension = obj.get("extension")
    reason = obj.get("reason")
    return CallRoute(
        phone=phone,
        client_id=_id_of(obj.get("client")),
        employee_id=_id_of(obj.get("employee")),
        extension=extension if isinstance(extension, str) and extension else None,
        reason=reason if isinstance(reason, str) else None,
    )


# --- paging and sorting -----------------------------------------------------
def page_after(obj: Mapping[str, Any]) -> Json:
    """The cursor for the next page: the last object's contentType and id."""
    return {F_CONTENT_TYPE: obj.get(F_CONTENT_TYPE), F_ID: _id_of(obj)}


def sort_by_time_updated_desc() -> list[Json]:
    return [{F_CONTENT_TYPE: CT_SORT_FIELD, "fieldName": F_TIME_UPDATED, "desc": True}]


# --- writers ----------------------------------------------------------------
def _ref(content_type: str, oid: str) -> Json:
    return {F_CONTENT_TYPE: content_type, F_ID: oid}


def contractor_human_payload(
    *,
    first_name: str | None = None,
    last_name: str | None = None,
    name: str | None = None,
    phones: Sequence[str] | None = None,
    responsible_ids: Sequence[str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> Json:
    """Create/update body for a person; only what is given is sent (an update keeps the rest).

    Phones replace the card's contactInfo (the first is main); responsibles are
    employee ids in order.
    """
    body: Json = {F_CONTENT_TYPE: CT_HUMAN}
    if first_name is not None:
        body[F_FIRST_NAME] = first_name
    if last_name is not None:
        body[F_LAST_NAME] = last_name
    if name is not None:
        body[F_NAME] = name
    if phones is not None:
        body[F_CONTACT_INFO] = [
            {
                F_CONTENT_TYPE: CT_CONTACT_INFO,
                F_CI_TYPE: CI_PHONE,
                F_CI_VALUE: phone,
                F_CI_MAIN: i == 0,
            }
            for i, phone in enumerate(phones)
        ]
    if responsible_ids is not None:
        body[F_RESPONSIBLES] = [_ref(CT_EMPLOYEE, rid) for rid in responsible_ids]
    if extra:
        body.update(extra)
    return body


def deal_payload(
    *,
    program_id: str,
    state_id: str | None,
    contractor_id: str,
    manager_id: str,
    name: str,
    contractor_kind: ClientKind = "human",
) -> Json:
    body: Json = {
        F_CONTENT_TYPE: CT_DEAL,
        F_PROGRAM: _ref(CT_PROGRAM, program_id),
        F_CONTRACTOR: _ref(_CLIENT_CONTENT_TYPES[contractor_kind], contractor_id),
        F_MANAGER: _ref(CT_EMPLOYEE, manager_id),
        F_NAME: name,
    }
    if state_id is not None:
        body[F_STATE] = _ref(CT_PROGRAM_STATE, state_id)
    return body


def call_info_payload(call: CallInfo) -> Json:
    return {
        F_CONTENT_TYPE: CT_CALL_INFO,
        "providerId": call.provider_id,
        "fromPhone": call.from_phone,
        "toPhone": call.to_phone,
        "fromUser": _ref(CT_EMPLOYEE, call.from_user) if call.from_user else None,
        "toUser": _ref(CT_EMPLOYEE, call.to_user) if call.to_user else None,
        "timeFrom": format_datetime(call.time_from),
        "timeTo": format_datetime(call.time_to),
        "type": call.type,
        "recordLinks": list(call.record_links),
    }


def comment_payload(text: str) -> Json:
    return {F_CONTENT_TYPE: CT_COMMENT, F_CONTENT: text}

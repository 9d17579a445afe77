"""Emulator rows as Megaplan API v3 JSON objects and envelopes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from emulators.megaplan_store import (
    CT_EMPLOYEE,
    ClientRow,
    EmployeeRow,
    ProgramRow,
    StateRow,
)

__all__ = [
    "client_json",
    "date_json",
    "employee_json",
    "envelope",
    "error_envelope",
    "program_json",
    "ref",
    "select_fields",
    "state_json",
]

Json = dict[str, Any]
_ALWAYS = ("contentType", "id")


def ref(content_type: str, oid: str) -> Json:
    return {"contentType": content_type, "id": oid}


def date_json(value: datetime) -> Json:
    return {"contentType": "DateTime", "value": value.isoformat()}


def _contact(kind: str, value: str, main: bool) -> Json:
    return {"contentType": "ContactInfo", "type": kind, "value": value, "isMain": main}


def employee_json(row: EmployeeRow) -> Json:
    contacts = [_contact("phone", p, i == 0) for i, p in enumerate(row.phones)]
    if row.email:
        contacts.append(_contact("email", row.email, True))
    fire_day = {"contentType": "DateOnly", "value": row.fire_day} if row.fire_day else None
    return {
        "contentType": CT_EMPLOYEE,
        "id": row.id,
        "firstName": row.first_name,
        "middleName": "",
        "lastName": row.last_name,
        "name": row.name,
        "isWorking": row.is_working,
        "fireDay": fire_day,
        "canLogin": row.can_login,
        "contactInfo": contacts,
        "timeUpdated": date_json(row.time_updated),
        "extension": row.extension,  # not Megaplan's: lets callRoute answer
    }


def client_json(row: ClientRow) -> Json:
    obj: Json = {"contentType": row.content_type, "id": row.id, "name": row.name}
    if row.kind == "human":
        obj["firstName"] = row.first_name
        obj["lastName"] = row.last_name
    obj["contactInfo"] = [_contact("phone", p, i == 0) for i, p in enumerate(row.phones)]
    obj["responsibles"] = [ref(ct, oid) for ct, oid in row.responsibles]
    obj["isDropped"] = row.is_dropped
    obj["timeCreated"] = date_json(row.time_created)
    obj["timeUpdated"] = date_json(row.time_updated)
    obj.update(row.extra)
    return obj


def state_json(state: StateRow) -> Json:
    return {
        "contentType": "ProgramState",
        "id": state.id,
        "name": state.name,
        "type": state.type,
        "isEntry": state.is_entry,
    }


def program_json(row: ProgramRow) -> Json:
    return {
        "contentType": "Program",
        "id": row.id,
        "name": row.name,
        "states": [state_json(s) for s in row.states],
    }


def select_fields(obj: Json, fields: Iterable[str] | None) -> Json:
    """``fields`` + ``onlyRequestedFields``: only those keys (contentType and id always)."""
    if fields is None:
        return obj
    wanted = (*_ALWAYS, *fields)
    return {k: obj[k] for k in wanted if k in obj}


def envelope(data: Any, *, status: int = 200, pagination: Mapping[str, Any] | None = None) -> Json:
    meta: Json = {"status": status, "errors": []}
    if pagination is not None:
        meta["pagination"] = dict(pagination)
    return {"meta": meta, "data": data}


def error_envelope(status: int, message: str, field: str | None = None) -> Json:
    return {
        "meta": {"status": status, "errors": [{"field": field, "message": message}]},
        "data": None,
    }

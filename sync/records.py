"""CRM objects as the records the database takes (the same ones ``import`` writes).

A phone that is not a phone number is logged with its client's id and left
out; the client is kept. An employee's extension comes from the PBX user with
the same e-mail (case-insensitive).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from lookup.importer import ClientRecord, EmployeeRecord
from lookup.phones import phone_key
from megaplan import mapping as mp

logger = logging.getLogger(__name__)

__all__ = ["LINE_FIELD_TITLE", "client_record", "employee_record", "line_field_name"]

LINE_FIELD_TITLE = "Номер линии MANGO OFFICE"


def line_field_name(fields: Iterable[mp.ExtraField]) -> str | None:
    """The key of the custom field «Номер линии MANGO OFFICE», found by its human title."""
    wanted = LINE_FIELD_TITLE.casefold()
    for f in fields:
        if f.hr_name.strip().casefold() == wanted:
            return f.name
    return None


def client_record(client: mp.Client, region: str, line_field: str | None) -> tuple[
        ClientRecord, int]:
    """The record and how many of its phones were refused."""
    phones: dict[int, str] = {}
    bad = 0
    for written in client.phones:
        key = phone_key(written, region)
        if key is None:
            bad += 1
            logger.warning("sync: client %s has a phone that is not a number; skipped",
                           client.id, extra={"client_id": client.id})
        else:
            phones.setdefault(key, written)
    line = client.extra.get(line_field) if line_field else None
    record = ClientRecord(
        id=client.id,
        kind=client.kind,
        name=client.name,
        phones=tuple(phones.items()),
        responsibles=tuple((r.kind, r.id) for r in client.responsibles),
        dropped=client.dropped,
        line_number=line or None,
    )
    return record, bad


def employee_record(employee: mp.Employee, extensions: Mapping[str, str] | None,
                    current: Mapping[str, str | None]) -> EmployeeRecord:
    """``extensions`` maps lowercase e-mails to PBX extensions; None when the PBX was not
    reachable, so the extension already stored (``current``) is kept."""
    if extensions is None:
        extension = current.get(employee.id)
    else:
        email = (employee.email or "").strip().casefold()
        extension = extensions.get(email) if email else None
    return EmployeeRecord(id=employee.id, name=employee.name, email=employee.email,
                          extension=extension, active=employee.active)

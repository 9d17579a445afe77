"""Data sets for the Megaplan emulator: generated from a seed, or the import JSONL.

The same set exported as import JSONL lets the product (``mango-router
import``) and the emulated CRM hold identical data for tests and the benchmark.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from emulators.megaplan_store import (
    CT_COMPANY,
    CT_EMPLOYEE,
    CT_HUMAN,
    ClientRow,
    EmployeeRow,
    Kind,
    MegaplanState,
    Ref,
)

__all__ = ["export_jsonl", "export_lines", "generate", "import_lines", "load_jsonl"]

logger = logging.getLogger(__name__)

FIRST_EMPLOYEE_ID = 1000001
FIRST_CLIENT_ID = 2000001
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_FIRST = ("Anna", "Ivan", "Olga", "Petr", "Maria", "Sergey", "Elena", "Dmitry", "Irina", "Pavel")
_LAST = ("Petrov", "Ivanov", "Smirnov", "Kuznetsov", "Popov", "Sokolov", "Lebedev", "Kozlov")
_COMPANY = ("Romashka", "Vector", "Orbita", "Sever", "Kometa", "Granit", "Polyus", "Volna")
_MOBILE = ("916", "903", "925", "926", "985", "999", "912", "950", "977", "964")


def _phone(digits10: str, style: int) -> str:
    a, b, c, d = digits10[:3], digits10[3:6], digits10[6:8], digits10[8:]
    if style == 0:
        return f"+7 ({a}) {b}-{c}-{d}"
    if style == 1:
        return f"8 {a} {b} {c} {d}"
    return f"7{digits10}"


def generate(clients: int, seed: int = 1) -> MegaplanState:
    """A deterministic CRM: max(10, N/2000) employees and N clients.

    Employees get extensions from "101" (the last one none) and e-mails
    "emp{k}@example.com"; about one in ten is fired or blocked. Clients have ids
    from "2000001", 1-2 Russian mobiles in mixed formats (0.5 % share a phone
    with an earlier client), 1-2 responsibles (5 % with a client first) and 1 %
    are dropped.
    """
    rng = random.Random(seed)
    state = MegaplanState()
    n_emp = max(10, clients // 2000)
    emp_ids = [str(FIRST_EMPLOYEE_ID + k) for k in range(n_emp)]
    for k, eid in enumerate(emp_ids, start=1):
        inactive = k % 10 == 3
        state.put_employee(
            EmployeeRow(
                id=eid,
                first_name=_FIRST[k % len(_FIRST)],
                last_name=f"{_LAST[(k // len(_FIRST)) % len(_LAST)]}-{k}",
                email=f"emp{k}@example.com",
                extension=None if k == n_emp else str(100 + k),
                is_working=not (inactive and k % 20 == 3),
                fire_day="2024-06-01" if inactive and k % 20 == 3 else None,
                can_login=not inactive,
                time_updated=_EPOCH,
            )
        )
    phones_seen: list[str] = []
    for i in range(clients):
        cid = str(FIRST_CLIENT_ID + i)
        phones: list[str] = []
        for _ in range(2 if rng.random() < 0.3 else 1):
            if phones_seen and rng.random() < 0.005:
                digits = rng.choice(phones_seen)
            else:
                digits = rng.choice(_MOBILE) + f"{rng.randrange(10_000_000):07d}"
                phones_seen.append(digits)
            phones.append(_phone(digits, rng.randrange(3)))
        responsibles: list[Ref] = []
        if i > 0 and rng.random() < 0.05:
            other = state.clients[str(FIRST_CLIENT_ID + rng.randrange(i))]
            responsibles.append((other.content_type, other.id))
        for _ in range(2 if rng.random() < 0.3 else 1):
            responsibles.append((CT_EMPLOYEE, rng.choice(emp_ids)))
        company = rng.random() < 0.1
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        created = _EPOCH + timedelta(seconds=rng.randrange(180 * 86400))
        updated = created + timedelta(seconds=rng.randrange(90 * 86400))
        state.put_client(
            ClientRow(
                id=cid,
                kind="company" if company else "human",
                name=f"OOO {rng.choice(_COMPANY)} {i}" if company else f"{first} {last}",
                first_name="" if company else first,
                last_name="" if company else last,
                phones=phones,
                responsibles=responsibles,
                is_dropped=rng.random() < 0.01,
                time_created=created,
                time_updated=updated,
            )
        )
    return state


def _employee_line(row: EmployeeRow) -> dict[str, Any]:
    return {
        "type": "employee",
        "id": row.id,
        "name": row.name,
        "extension": row.extension,
        "email": row.email,
        "active": row.active,
    }


def _client_line(row: ClientRow) -> dict[str, Any]:
    responsibles = [
        {"type": "employee" if ct == CT_EMPLOYEE else "client", "id": oid}
        for ct, oid in row.responsibles
        if ct in (CT_EMPLOYEE, CT_HUMAN, CT_COMPANY)
    ]
    return {
        "type": "client",
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "phones": row.phones,
        "responsibles": responsibles,
    }


def export_lines(state: MegaplanState) -> Iterator[bytes]:
    """Import-format lines; dropped (deleted) clients are left out, as routing ignores them."""
    for emp in state.employee_list():
        yield orjson.dumps(_employee_line(emp))
    for key in state.client_ids_by_id():
        row = state.clients[str(key)]
        if not row.is_dropped:
            yield orjson.dumps(_client_line(row))


def export_jsonl(state: MegaplanState, path: str | Path) -> int:
    """Write the data set in the import format of PROTOCOLS §4; returns the line count."""
    count = 0
    with Path(path).open("wb") as out:
        for line in export_lines(state):
            out.write(line + b"\n")
            count += 1
    return count


def import_lines(state: MegaplanState, lines: Iterator[bytes] | list[bytes]) -> MegaplanState:
    """Load import-format lines into ``state``; a bad line is logged and skipped."""
    client_refs: list[tuple[ClientRow, list[dict[str, Any]]]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
            if obj["type"] == "employee":
                active = bool(obj.get("active", True))
                name = str(obj.get("name") or "")
                first, _, last = name.partition(" ")
                state.put_employee(
                    EmployeeRow(
                        id=str(obj["id"]),
                        first_name=first,
                        last_name=last,
                        email=obj.get("email") or None,
                        extension=obj.get("extension") or None,
                        can_login=active,
                        time_updated=_EPOCH,
                    )
                )
            elif obj["type"] == "client":
                kind: Kind = "company" if obj.get("kind") == "company" else "human"
                name = str(obj.get("name") or "")
                first, _, last = name.partition(" ")
                row = ClientRow(
                    id=str(obj["id"]),
                    kind=kind,
                    name=name,
                    first_name=first if kind == "human" else "",
                    last_name=last if kind == "human" else "",
                    phones=[str(p) for p in obj.get("phones") or []],
                    time_created=_EPOCH,
                    time_updated=_EPOCH,
                )
                client_refs.append((row, list(obj.get("responsibles") or [])))
            else:
                raise ValueError(f"unknown type {obj['type']!r}")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("megaplan emulator: import line %d skipped: %s", number, exc)
    for row, _ in client_refs:
        state.put_client(row)
    for row, refs in client_refs:  # client-as-responsible needs every client known first
        for ref in refs:
            rid = str(ref.get("id"))
            if ref.get("type") == "employee":
                row.responsibles.append((CT_EMPLOYEE, rid))
            else:
                other = state.clients.get(rid)
                row.responsibles.append((other.content_type if other else CT_HUMAN, rid))
    return state


def load_jsonl(path: str | Path) -> MegaplanState:
    with Path(path).open("rb") as src:
        return import_lines(MegaplanState(), list(src))

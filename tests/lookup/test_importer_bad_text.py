"""Import lines whose text PostgreSQL would refuse (a NUL character, an id too long for
its index) are bad lines, reported with their numbers; they never sink the batch that
holds the good lines (PROTOCOLS §4: the rest imported, exit 1)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from tests.lookup.test_importer import CLIENTS, EMPLOYEES, _dump, _import, _lines, _run_cli

GOOD = EMPLOYEES + CLIENTS
# too long for PostgreSQL's index on ids (about 2,700 bytes, and this does not compress)
UNINDEXABLE = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(100))


def _with(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**record, **changes, "id": changes.get("id", "9" + str(record["id"]))}


BAD: list[tuple[dict[str, Any], str]] = [
    (_with(EMPLOYEES[0], name="Anna\x00Petrova"), "'name'"),
    (_with(EMPLOYEES[0], id="10000\x0001"), "'id'"),
    (_with(EMPLOYEES[0], email="anna@\x00example.com"), "'email'"),
    (_with(EMPLOYEES[0], extension="1\x0001"), "'extension'"),
    (_with(CLIENTS[0], name="\x00"), "'name'"),
    (_with(CLIENTS[0], id="\x002000001"), "'id'"),
    (_with(CLIENTS[0], responsibles=[{"type": "employee", "id": "1\x00"}]), "'id'"),
    (_with(CLIENTS[2], line_number="7495\x001112233"), "'line_number'"),
    (_with(EMPLOYEES[0], id="1" * 257), "'id'"),
    (_with(CLIENTS[0], id=UNINDEXABLE), "'id'"),
    (_with(CLIENTS[0], responsibles=[{"type": "employee", "id": UNINDEXABLE}]), "'id'"),
]


@pytest.mark.parametrize(("record", "named"), BAD)
async def test_a_line_with_text_the_database_refuses_is_a_bad_line_and_the_rest_is_imported(
    db: asyncpg.Connection, record: dict[str, Any], named: str,
) -> None:
    lines = _lines(GOOD[:2]) + _lines([record]) + _lines(GOOD[2:])
    report = await _import(db, lines)
    assert [e.line for e in report.errors] == [3], report.errors
    assert named in report.errors[0].reason
    assert (report.employees, report.clients) == (len(EMPLOYEES), len(CLIENTS))
    dump = await _dump(db)
    assert [r[1] for r in dump["employees"]] == sorted(str(e["id"]) for e in EMPLOYEES)
    assert [r[1] for r in dump["clients"]] == sorted(str(c["id"]) for c in CLIENTS)


async def test_a_phone_with_a_nul_is_not_a_phone_number(db: asyncpg.Connection) -> None:
    record = dict(CLIENTS[0], phones=["+7 916 123-45-67\x00", "8 916 765-43-21"])
    report = await _import(db, _lines([record]))
    assert [(e.line, e.reason) for e in report.errors] == [
        (1, "not a phone number: '+7 916 123-45-67\\x00'")]
    assert [r[3] for r in (await _dump(db))["client_phones"]] == ["8 916 765-43-21"]


async def test_an_id_of_256_characters_is_taken(db: asyncpg.Connection) -> None:
    report = await _import(db, _lines([dict(EMPLOYEES[0], id="7" * 256)]))
    assert report.errors == []
    assert [r[1] for r in (await _dump(db))["employees"]] == ["7" * 256]


async def test_cli_import_of_a_file_with_a_nul_reports_the_line_and_exits_1(
    dsn: str, db: asyncpg.Connection, tmp_path: Path,
) -> None:
    path = tmp_path / "data.jsonl"
    lines = [*_lines(GOOD[:1]), orjson.dumps(BAD[0][0]), *_lines(GOOD[1:])]
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = await _run_cli(dsn, path, tmp_path)
    assert code == 1, err
    assert f"{path}:2: 'name'" in err
    assert "DATABASE_URL" not in err
    assert f"{len(EMPLOYEES)} employees, {len(CLIENTS)} clients" in out
    assert await db.fetchval("SELECT count(*) FROM clients") == len(CLIENTS)

"""``mango-router import``: the JSONL import of employees and clients (PROTOCOLS §4)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from lookup.accounts import upsert_default_account
from lookup.importer import ImportReport, import_lines
from tests.conftest import load_records, write_jsonl

MANGO_ROUTER = Path(sys.executable).parent / "mango-router"

EMPLOYEES: list[dict[str, Any]] = [
    {"type": "employee", "id": "1000001", "name": "Anna Petrova", "extension": "101",
     "email": "anna@example.com", "active": True},
    {"type": "employee", "id": "1000002", "name": "Boris", "extension": "102", "active": False},
    {"type": "employee", "id": "1000003", "name": "Vera"},
]
CLIENTS: list[dict[str, Any]] = [
    {"type": "client", "id": "2000001", "kind": "human", "name": "Ivan Ivanov",
     "phones": ["+7 (916) 123-45-67", "8 916 765-43-21"],
     "responsibles": [{"type": "client", "id": "2000002"},
                      {"type": "employee", "id": "1000001"}]},
    {"type": "client", "id": "2000002", "kind": "company", "name": "OOO Romashka",
     "phones": ["+380 44 123 4567"], "responsibles": [{"type": "employee", "id": "1000002"}]},
    {"type": "client", "id": "2000003", "name": "No phones", "dropped": True,
     "line_number": "74951112233"},
]


async def _account(db: asyncpg.Connection) -> int:
    account_id: int = await upsert_default_account(
        db, mango_api_key="test-key", mango_api_salt="test-salt",
        mango_api_url="http://127.0.0.1:1/vpbx/", megaplan=(None, None, None))
    return account_id


async def _import(db: asyncpg.Connection, lines: list[bytes]) -> ImportReport:
    return await import_lines(db, await _account(db), io.BytesIO(b"\n".join(lines) + b"\n"))


def _lines(records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


async def _dump(db: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every imported table, without serial uids and timestamps."""
    queries = {
        "employees": "SELECT account_id, crm_id, name, email, extension, extension_manual, active"
                     " FROM employees ORDER BY account_id, crm_id",
        "clients": "SELECT account_id, crm_id, kind, name, dropped, line_number"
                   " FROM clients ORDER BY account_id, crm_id",
        "client_phones": "SELECT p.account_id, c.crm_id, p.phone_key, p.raw"
                         " FROM client_phones p JOIN clients c ON c.uid = p.client_uid"
                         " ORDER BY 1, 2, 3",
        "client_responsibles": "SELECT r.account_id, c.crm_id, r.position, r.kind, r.ref_id"
                               " FROM client_responsibles r JOIN clients c"
                               " ON c.uid = r.client_uid ORDER BY 1, 2, 3",
    }
    return {name: [tuple(r) for r in await db.fetch(q)] for name, q in queries.items()}


async def test_import_counts_employees_clients_and_phones(db: asyncpg.Connection) -> None:
    report = await _import(db, _lines(EMPLOYEES + CLIENTS))
    assert (report.employees, report.clients, report.phones) == (3, 3, 3)
    assert report.errors == []
    dump = await _dump(db)
    account_id = await _account(db)
    assert dump["employees"] == [
        (account_id, "1000001", "Anna Petrova", "anna@example.com", "101", False, True),
        (account_id, "1000002", "Boris", None, "102", False, False),
        (account_id, "1000003", "Vera", None, None, False, True),
    ]
    assert dump["clients"] == [
        (account_id, "2000001", "human", "Ivan Ivanov", False, None),
        (account_id, "2000002", "company", "OOO Romashka", False, None),
        (account_id, "2000003", "human", "No phones", True, "74951112233"),
    ]
    assert dump["client_phones"] == [
        (account_id, "2000001", 79161234567, "+7 (916) 123-45-67"),
        (account_id, "2000001", 79167654321, "8 916 765-43-21"),
        (account_id, "2000002", 380441234567, "+380 44 123 4567"),
    ]
    assert dump["client_responsibles"] == [
        (account_id, "2000001", 0, "client", "2000002"),
        (account_id, "2000001", 1, "employee", "1000001"),
        (account_id, "2000002", 0, "employee", "1000002"),
    ]


async def test_an_import_leaves_its_tables_vacuumed_and_analysed(
        db: asyncpg.Connection) -> None:
    """Not for autovacuum to do a minute later, beside routing."""
    await _import(db, _lines(EMPLOYEES + CLIENTS))
    rows = await db.fetch(
        """SELECT relname, relallvisible, reltuples FROM pg_class
           WHERE relname IN ('employees', 'clients', 'client_phones', 'client_responsibles')
           ORDER BY relname""")
    assert [(r["relname"], r["relallvisible"] > 0, r["reltuples"]) for r in rows] == [
        ("client_phones", True, 3), ("client_responsibles", True, 3), ("clients", True, 3),
        ("employees", True, 3)]


async def test_importing_the_same_file_twice_gives_identical_tables(
    db: asyncpg.Connection, dsn: str
) -> None:
    await load_records(dsn, EMPLOYEES + CLIENTS)
    first = await _dump(db)
    uids = await db.fetch("SELECT crm_id, uid FROM clients ORDER BY crm_id")
    await load_records(dsn, EMPLOYEES + CLIENTS)
    assert await _dump(db) == first
    assert await db.fetch("SELECT crm_id, uid FROM clients ORDER BY crm_id") == uids


async def test_existing_client_is_updated_in_place_with_phones_and_responsibles_replaced(
    db: asyncpg.Connection,
) -> None:
    await _import(db, _lines(EMPLOYEES + CLIENTS))
    uid = await db.fetchval("SELECT uid FROM clients WHERE crm_id = '2000001'")
    changed = {"type": "client", "id": "2000001", "kind": "human", "name": "Ivan I. Ivanov",
               "phones": ["+7 999 000-00-01"],
               "responsibles": [{"type": "employee", "id": "1000003"}]}
    report = await _import(db, _lines([changed]))
    assert (report.clients, report.phones, report.errors) == (1, 1, [])
    assert await db.fetchval("SELECT uid FROM clients WHERE crm_id = '2000001'") == uid
    dump = await _dump(db)
    assert [r[1:] for r in dump["client_phones"] if r[1] == "2000001"] == [
        ("2000001", 79990000001, "+7 999 000-00-01")]
    assert [r[1:] for r in dump["client_responsibles"] if r[1] == "2000001"] == [
        ("2000001", 0, "employee", "1000003")]
    assert [r[3] for r in dump["clients"] if r[1] == "2000001"] == ["Ivan I. Ivanov"]
    # the other clients are untouched
    assert [r for r in dump["client_phones"] if r[1] == "2000002"] != []


async def test_existing_employee_is_updated_in_place(db: asyncpg.Connection) -> None:
    await _import(db, _lines(EMPLOYEES))
    uid = await db.fetchval("SELECT uid FROM employees WHERE crm_id = '1000002'")
    await _import(db, _lines([{"type": "employee", "id": "1000002", "name": "Boris B.",
                               "extension": "", "active": True}]))
    row = await db.fetchrow("SELECT uid, name, extension, active FROM employees"
                            " WHERE crm_id = '1000002'")
    assert row is not None
    assert tuple(row) == (uid, "Boris B.", None, True)


async def test_bad_lines_are_reported_with_line_numbers_and_good_lines_imported(
    db: asyncpg.Connection,
) -> None:
    lines = [
        orjson.dumps(EMPLOYEES[0]),                                        # 1
        b'{"type": "employee", "id": ',                                    # 2 not JSON
        b'["employee", "1000009"]',                                        # 3 not an object
        b'{"type": "deal", "id": "5"}',                                    # 4 unknown type
        b'{"type": "client", "name": "Nobody", "phones": ["79160000000"]}',  # 5 missing id
        orjson.dumps({"type": "client", "id": "2000006",                   # 6 one bad phone
                      "phones": ["+7 916 111-22-33", "call me"],
                      "responsibles": [{"type": "employee", "id": "1000001"}]}),
        b"",                                                               # 7 blank: skipped
        orjson.dumps(CLIENTS[1]),                                          # 8
        b'{"type": "employee", "name": "No id"}',                          # 9 missing id
        b'"just a string"',                                                # 10 not an object
    ]
    report = await _import(db, lines)
    got = [(e.line, e.reason) for e in report.errors]
    assert [line for line, _ in got] == [2, 3, 4, 5, 6, 9, 10]
    reasons = dict(got)
    assert reasons[2].startswith("not JSON")
    assert reasons[3] == "not a JSON object"
    assert "type" in reasons[4]
    assert "'id'" in reasons[5]
    assert reasons[6] == "not a phone number: 'call me'"
    assert "'id'" in reasons[9]
    assert reasons[10] == "not a JSON object"
    assert (report.employees, report.clients, report.phones) == (1, 2, 2)
    dump = await _dump(db)
    assert [r[1] for r in dump["employees"]] == ["1000001"]
    assert [r[1] for r in dump["clients"]] == ["2000002", "2000006"]


async def test_bad_phone_drops_only_that_phone(db: asyncpg.Connection) -> None:
    record = {"type": "client", "id": "7", "name": "Half",
              "phones": ["12", "+7 916 111-22-33", "нет"],
              "responsibles": [{"type": "employee", "id": "1"}]}
    report = await _import(db, _lines([record]))
    assert [(e.line, e.reason) for e in report.errors] == [
        (1, "not a phone number: '12'"), (1, "not a phone number: 'нет'")]
    dump = await _dump(db)
    assert [r[1:] for r in dump["client_phones"]] == [("7", 79161112233, "+7 916 111-22-33")]
    assert [r[1:] for r in dump["client_responsibles"]] == [("7", 0, "employee", "1")]


async def test_duplicate_ids_in_one_file_last_one_wins(db: asyncpg.Connection) -> None:
    records: list[dict[str, Any]] = [
        {"type": "employee", "id": "1", "name": "First", "extension": "101"},
        {"type": "client", "id": "5", "name": "First", "phones": ["79160000001"],
         "responsibles": [{"type": "employee", "id": "1"}]},
        {"type": "employee", "id": "1", "name": "Last", "extension": "109"},
        {"type": "client", "id": "5", "name": "Last", "phones": ["79160000002"],
         "responsibles": [{"type": "employee", "id": "2"}]},
    ]
    report = await _import(db, _lines(records))
    assert report.errors == []
    dump = await _dump(db)
    assert [r[1:5] for r in dump["employees"]] == [("1", "Last", None, "109")]
    assert [r[1:4] for r in dump["clients"]] == [("5", "human", "Last")]
    assert [r[1:3] for r in dump["client_phones"]] == [("5", 79160000002)]
    assert [r[1:] for r in dump["client_responsibles"]] == [("5", 0, "employee", "2")]


async def test_extension_set_by_hand_survives_a_reimport(db: asyncpg.Connection) -> None:
    await _import(db, _lines(EMPLOYEES))
    await db.execute("UPDATE employees SET extension_manual = true, extension = '555'"
                     " WHERE crm_id = '1000001'")
    renamed = dict(EMPLOYEES[0], name="Anna P.", extension="199")
    await _import(db, _lines([renamed, *EMPLOYEES[1:]]))
    row = await db.fetchrow("SELECT name, extension, extension_manual FROM employees"
                            " WHERE crm_id = '1000001'")
    assert row is not None
    assert tuple(row) == ("Anna P.", "555", True)
    # an extension not set by hand follows the file
    other = await db.fetchval("SELECT extension FROM employees WHERE crm_id = '1000002'")
    assert other == "102"


async def _run_cli(dsn: str, path: Path, cwd: Path) -> tuple[int, str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "MANGO_API_KEY": "test-key",
           "MANGO_API_SALT": "test-salt", "ROUTER_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        str(MANGO_ROUTER), "--database-url", dsn, "import", str(path),
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_import_exits_1_and_names_file_and_line_of_a_bad_line(
    dsn: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(orjson.dumps(EMPLOYEES[0]) + b"\n{oops\n"
                     + orjson.dumps(dict(CLIENTS[1], phones=["+380 44 123 4567", "x"])) + b"\n")
    code, _, err = await _run_cli(dsn, path, tmp_path)
    assert code == 1, err
    bad = [line for line in err.splitlines() if line.startswith(f"{path}:")]
    assert len(bad) == 2, err
    assert bad[0].startswith(f"{path}:2: not JSON")
    assert bad[1] == f"{path}:3: not a phone number: 'x'"
    assert await db.fetchval("SELECT count(*) FROM employees") == 1
    assert await db.fetchval("SELECT count(*) FROM client_phones") == 1


async def test_cli_import_exits_0_when_every_line_was_taken(
    dsn: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", EMPLOYEES + CLIENTS)
    code, out, err = await _run_cli(dsn, path, tmp_path)
    assert code == 0, err
    assert f"{path}:" not in err
    assert "3 employees, 3 clients, 3 phones" in out
    assert await db.fetchval("SELECT count(*) FROM clients") == 3


async def test_line_number_is_kept_by_import_and_cleared_by_a_sync_that_has_none(
    db: asyncpg.Connection,
) -> None:
    from lookup.importer import ClientRecord, write_clients

    account = await upsert_default_account(
        db, mango_api_key="k", mango_api_salt="s", mango_api_url="http://x/",
        megaplan=(None, None, None))

    def record(line: str | None) -> ClientRecord:
        return ClientRecord(id="1", kind="human", name="A", phones=(), responsibles=(),
                            line_number=line)

    await write_clients(db, account, [record("74951112233")])
    await write_clients(db, account, [record(None)])  # an import file says nothing of it
    assert await db.fetchval("SELECT line_number FROM clients") == "74951112233"
    await write_clients(db, account, [record(None)], sets_line_number=True)  # the CRM: empty
    assert await db.fetchval("SELECT line_number FROM clients") is None

"""``mango-router import FILE``: employees and clients from JSONL (PROTOCOLS §4).

An idempotent upsert in batches: a record whose id exists is updated in place
(a client's phones and responsibles replaced), so importing a file twice gives
the same state. Each batch is one transaction of a few array statements, so a
client is never seen by routing with its phones half replaced. Bad lines and
bad phones are reported with their line numbers; everything else is taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from lookup.conn import Conn
from lookup.phones import phone_key

logger = logging.getLogger(__name__)

__all__ = [
    "ClientRecord",
    "EmployeeRecord",
    "ImportReport",
    "LineError",
    "import_lines",
    "replace_responsibles",
    "write_clients",
    "write_employees",
]

BATCH = 20_000
# Ids are a few digits; PostgreSQL's indexes on them refuse a key of about 2,700 bytes,
# which would fail the whole batch, so a longer one is a bad line.
MAX_ID = 256


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EmployeeRecord:
    id: str
    name: str
    email: str | None
    extension: str | None
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRecord:
    id: str
    kind: str
    name: str
    phones: tuple[tuple[int, str], ...]  # (key, as written)
    responsibles: tuple[tuple[str, str], ...]  # (kind, id), CRM order
    dropped: bool = False
    line_number: str | None = None


@dataclass(slots=True)
class ImportReport:
    employees: int = 0
    clients: int = 0
    phones: int = 0
    errors: list[LineError] = field(default_factory=list)


def _text(obj: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise ValueError(f"{key!r} is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # ids written as numbers
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string")
    if "\x00" in value:  # PostgreSQL's text refuses it, and with it the whole batch
        raise ValueError(f"{key!r} must not contain a NUL character")
    return value


def _id(obj: dict[str, Any]) -> str:
    value = str(_text(obj, "id"))
    if len(value) > MAX_ID:
        raise ValueError(f"'id' must be at most {MAX_ID} characters")
    return value


def parse_line(
    raw: bytes, line_no: int, region: str, errors: list[LineError]
) -> EmployeeRecord | ClientRecord | None:
    """One line; problems go to ``errors``. A bad phone drops that phone, not the client."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        errors.append(LineError(line_no, f"not JSON: {exc.msg}"))
        return None
    try:
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        kind = obj.get("type")
        if kind == "employee":
            active = obj.get("active", True)
            if not isinstance(active, bool):
                raise ValueError("'active' must be true or false")
            return EmployeeRecord(
                id=_id(obj),
                name=_text(obj, "name", required=False) or "",
                email=_text(obj, "email", required=False),
                extension=_text(obj, "extension", required=False),
                active=active,
            )
        if kind == "client":
            return _client(obj, line_no, region, errors)
        raise ValueError("'type' must be employee or client")
    except ValueError as exc:
        errors.append(LineError(line_no, str(exc)))
        return None


def _client(obj: dict[str, Any], line_no: int, region: str,
            errors: list[LineError]) -> ClientRecord:
    client_kind = obj.get("kind", "human")
    if client_kind not in ("human", "company"):
        raise ValueError("'kind' must be human or company")
    phones_in = obj.get("phones", [])
    resp_in = obj.get("responsibles", [])
    if not isinstance(phones_in, list) or not all(isinstance(p, str) for p in phones_in):
        raise ValueError("'phones' must be a list of strings")
    if not isinstance(resp_in, list):
        raise ValueError("'responsibles' must be a list")
    phones: dict[int, str] = {}
    for written in phones_in:
        # a NUL is no part of a number, and the phone is stored as written
        key = None if "\x00" in written else phone_key(written, region)
        if key is None:
            errors.append(LineError(line_no, f"not a phone number: {written!r}"))
        else:
            phones.setdefault(key, written)
    responsibles: list[tuple[str, str]] = []
    for r in resp_in:
        if not isinstance(r, dict) or r.get("type") not in ("employee", "client", "group"):
            raise ValueError("each responsible must be {\"type\": employee|client|group, \"id\"}")
        responsibles.append((r["type"], _id(r)))
    dropped = obj.get("dropped", False)
    return ClientRecord(
        id=_id(obj),
        kind=client_kind,
        name=_text(obj, "name", required=False) or "",
        phones=tuple(phones.items()),
        responsibles=tuple(responsibles),
        dropped=dropped is True,
        line_number=_text(obj, "line_number", required=False),
    )


async def write_employees(con: Conn, account_id: int, batch: Iterable[EmployeeRecord]) -> int:
    """Upsert employees; an extension set by hand by an admin is kept."""
    records = list({e.id: e for e in batch}.values())
    if not records:
        return 0
    await con.execute(
        """
        INSERT INTO employees (account_id, crm_id, name, email, extension, active)
        SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
        ON CONFLICT (account_id, crm_id) DO UPDATE SET
            name = EXCLUDED.name, email = EXCLUDED.email, active = EXCLUDED.active,
            extension = CASE WHEN employees.extension_manual THEN employees.extension
                             ELSE EXCLUDED.extension END,
            updated_at = now()
        WHERE (employees.name, employees.email, employees.active, employees.extension)
              IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.email, EXCLUDED.active,
                                CASE WHEN employees.extension_manual THEN employees.extension
                                     ELSE EXCLUDED.extension END)
        """,
        account_id,
        [e.id for e in records],
        [e.name for e in records],
        [e.email for e in records],
        [e.extension for e in records],
        [e.active for e in records],
    )
    return len(records)


async def write_clients(
    con: Conn, account_id: int, batch: Iterable[ClientRecord], *, sets_line_number: bool = False
) -> int:
    """Upsert clients with their phones and responsibles, in one transaction.

    ``sets_line_number``: the records carry the CRM's line-number field (sync), so an
    empty one clears ours; an import file does not carry it, so ours is kept.
    """
    records = list({c.id: c for c in batch}.values())  # the last line for an id wins
    if not records:
        return 0
    async with con.transaction():
        rows = await con.fetch(
            """
            INSERT INTO clients (account_id, crm_id, kind, name, dropped, line_number)
            SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::text[])
            ON CONFLICT (account_id, crm_id) DO UPDATE SET
                kind = EXCLUDED.kind, name = EXCLUDED.name, dropped = EXCLUDED.dropped,
                line_number = CASE WHEN $7 THEN EXCLUDED.line_number
                                   ELSE coalesce(EXCLUDED.line_number, clients.line_number) END,
                updated_at = now()
            RETURNING uid, crm_id, (xmax = 0) AS inserted
            """,
            account_id,
            [c.id for c in records],
            [c.kind for c in records],
            [c.name for c in records],
            [c.dropped for c in records],
            [c.line_number for c in records],
            sets_line_number,
        )
        uid_of = {r["crm_id"]: r["uid"] for r in rows}
        updated = [r["uid"] for r in rows if not r["inserted"]]
        if updated:
            await con.execute("DELETE FROM client_phones WHERE client_uid = ANY($1::int8[])",
                              updated)
            await con.execute(
                "DELETE FROM client_responsibles WHERE client_uid = ANY($1::int8[])", updated
            )
        p_uid: list[int] = []
        p_key: list[int] = []
        p_raw: list[str] = []
        r_uid: list[int] = []
        r_pos: list[int] = []
        r_kind: list[str] = []
        r_ref: list[str] = []
        for c in records:
            uid = uid_of[c.id]
            for key, written in c.phones:
                p_uid.append(uid)
                p_key.append(key)
                p_raw.append(written)
            for pos, (kind, ref) in enumerate(c.responsibles):
                r_uid.append(uid)
                r_pos.append(pos)
                r_kind.append(kind)
                r_ref.append(ref)
        if p_uid:
            await con.execute(
                """INSERT INTO client_phones (client_uid, account_id, phone_key, raw)
                   SELECT u, $1, k, w
                   FROM unnest($2::int8[], $3::int8[], $4::text[]) AS t(u, k, w)""",
                account_id, p_uid, p_key, p_raw,
            )
        if r_uid:
            await con.execute(
                """INSERT INTO client_responsibles (client_uid, account_id, position, kind, ref_id)
                   SELECT u, $1, p, k, r
                   FROM unnest($2::int8[], $3::int4[], $4::text[], $5::text[]) AS t(u, p, k, r)""",
                account_id, r_uid, r_pos, r_kind, r_ref,
            )
    return len(records)


async def replace_responsibles(con: Conn, account_id: int, client_id: str,
                               responsibles: Sequence[tuple[str, str]]) -> bool:
    """A client's responsibles replaced, in order; False when the copy has no such client."""
    async with con.transaction():
        uid = await con.fetchval(
            "SELECT uid FROM clients WHERE account_id = $1 AND crm_id = $2", account_id,
            client_id)
        if uid is None:
            return False
        await con.execute("DELETE FROM client_responsibles WHERE client_uid = $1", uid)
        await con.executemany(
            """INSERT INTO client_responsibles (client_uid, account_id, position, kind, ref_id)
               VALUES ($1, $2, $3, $4, $5)""",
            [(uid, account_id, pos, kind, ref) for pos, (kind, ref) in enumerate(responsibles)])
    return True


def _batches(
    lines: Iterable[bytes], region: str, errors: list[LineError]
) -> Iterator[tuple[list[EmployeeRecord], list[ClientRecord]]]:
    employees: list[EmployeeRecord] = []
    clients: list[ClientRecord] = []
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        record = parse_line(raw, line_no, region, errors)
        if isinstance(record, EmployeeRecord):
            employees.append(record)
        elif isinstance(record, ClientRecord):
            clients.append(record)
        if len(employees) + len(clients) >= BATCH:
            yield employees, clients
            employees, clients = [], []
    if employees or clients:
        yield employees, clients


async def import_lines(
    con: Conn, account_id: int, stream: IO[bytes], *, region: str = "RU"
) -> ImportReport:
    """Import a JSONL stream; the database writes one batch while a thread parses the next."""
    report = ImportReport()
    pending: asyncio.Task[tuple[int, int, int]] | None = None

    async def write(employees: list[EmployeeRecord], clients: list[ClientRecord]
                    ) -> tuple[int, int, int]:
        e = await write_employees(con, account_id, employees)
        c = await write_clients(con, account_id, clients)
        return e, c, sum(len(x.phones) for x in clients)

    def take(counts: tuple[int, int, int]) -> None:
        report.employees += counts[0]
        report.clients += counts[1]
        report.phones += counts[2]

    batches = _batches(stream, region, report.errors)
    while (batch := await asyncio.to_thread(next, batches, None)) is not None:
        if pending is not None:
            take(await pending)
        pending = asyncio.ensure_future(write(*batch))
    if pending is not None:
        take(await pending)
    # Vacuumed and analysed now, not at autovacuum's next round: plans made before it
    # would take a table of a million rows for an empty one, and the rows just
    # written would have autovacuum's insert threshold vacuum them all about a minute
    # later, beside routing (measured in bench/: in the middle of the index mode).
    await con.execute(
        "VACUUM (ANALYZE) employees, clients, client_phones, client_responsibles")
    return report

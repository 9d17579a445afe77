"""The emulated CRM's data: employees, clients, programs, deals, calls, tokens.

Tests and the benchmark change it while the server runs (add, drop, fire,
re-assign) and read back every write the product made.
"""

from __future__ import annotations

import bisect
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from emulators.megaplan_faults import Faults
from emulators.megaplan_phones import normalise_digits

__all__ = [
    "CT_COMPANY",
    "CT_EMPLOYEE",
    "CT_HUMAN",
    "LINE_FIELD_NAME",
    "SOURCE_FIELD_NAME",
    "TOKEN_TTL_S",
    "ClientRow",
    "EmployeeRow",
    "Kind",
    "MegaplanState",
    "ProgramRow",
    "Ref",
    "StateRow",
    "Write",
]

logger = logging.getLogger(__name__)

CT_EMPLOYEE = "Employee"
CT_HUMAN = "ContractorHuman"
CT_COMPANY = "ContractorCompany"
CT_GROUP = "Group"
LINE_FIELD_NAME = "Category1000047CustomFieldNomerLiniiMangoOffice"
SOURCE_FIELD_NAME = "Category1000047CustomFieldIstochnik"
TOKEN_TTL_S = 172800

Kind = Literal["human", "company"]
Ref = tuple[str, str]  # (contentType, id)


@dataclass(slots=True, kw_only=True)
class EmployeeRow:
    id: str
    first_name: str
    last_name: str
    email: str | None = None
    extension: str | None = None
    phones: list[str] = field(default_factory=list)
    is_working: bool = True
    fire_day: str | None = None  # ISO date when fired
    can_login: bool = True
    time_updated: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def active(self) -> bool:
        return self.is_working and not self.fire_day and self.can_login


@dataclass(slots=True, kw_only=True)
class ClientRow:
    id: str
    kind: Kind
    name: str
    first_name: str = ""
    last_name: str = ""
    phones: list[str] = field(default_factory=list)
    responsibles: list[Ref] = field(default_factory=list)
    is_dropped: bool = False
    time_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    time_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return CT_HUMAN if self.kind == "human" else CT_COMPANY


@dataclass(frozen=True, slots=True, kw_only=True)
class StateRow:
    id: str
    name: str
    type: str  # active / positive / negative
    is_entry: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramRow:
    id: str
    name: str
    states: tuple[StateRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """One write the product made, as it arrived."""

    method: str
    path: str
    body: Any


def _default_programs() -> dict[str, ProgramRow]:
    sales = ProgramRow(
        id="1",
        name="Продажи",
        states=(
            StateRow(id="1", name="Новая", type="active", is_entry=True),
            StateRow(id="2", name="В работе", type="active"),
            StateRow(id="3", name="Успешно", type="positive"),
            StateRow(id="4", name="Отказ", type="negative"),
        ),
    )
    support = ProgramRow(
        id="2",
        name="Поддержка",
        states=(
            StateRow(id="5", name="Обращение", type="active", is_entry=True),
            StateRow(id="6", name="Решено", type="positive"),
            StateRow(id="7", name="Закрыто", type="negative"),
        ),
    )
    return {p.id: p for p in (sales, support)}


def _default_extra_fields() -> list[tuple[str, str]]:
    return [(LINE_FIELD_NAME, "Номер линии MANGO OFFICE"), (SOURCE_FIELD_NAME, "Источник")]


class MegaplanState:
    """Clients are kept sorted by id (and, lazily, by timeUpdated) for fast paging."""

    def __init__(
        self,
        *,
        username: str = "demo",
        password: str = "demo",
        faults: Faults | None = None,
    ) -> None:
        self.username = username
        self.password = password
        # what a token request with wrong credentials is answered (an OAuth server may
        # answer 400 invalid_grant, or 403 for a blocked user; tests set it)
        self.bad_credentials_status = 401
        # False: an instance without call history (``callInfo/history`` answers 404)
        self.call_history = True
        self.faults = faults or Faults()
        self.employees: dict[str, EmployeeRow] = {}
        self.clients: dict[str, ClientRow] = {}
        self.programs: dict[str, ProgramRow] = _default_programs()
        self.extra_fields: list[tuple[str, str]] = _default_extra_fields()
        self.deals: dict[str, dict[str, Any]] = {}
        self.call_infos: dict[str, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.writes: list[Write] = []  # every write body that arrived, applied or refused
        # What the writes did, by kind: client_created, client_updated, deal_created,
        # call_recorded, call_updated, comment_added (a lost answer still counts).
        self.applied: Counter[str] = Counter()
        self.created_client_ids: list[str] = []  # by POST contractorHuman, in order
        self.call_posts: Counter[str] = Counter()  # providerId -> times posted
        self.request_count = 0
        self.tokens_issued = 0
        self.token_ttl_s: float = TOKEN_TTL_S
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._id_keys: list[int] = []  # client ids as ints, sorted
        self._by_phone: dict[str, set[str]] = {}
        self._by_updated: list[str] | None = None  # ids, timeUpdated desc; None = stale
        self._updated_pos: dict[str, int] = {}
        self._next_client_id = 2000001
        self._next_deal_id = 1
        self._next_comment_id = 1
        self._last_stamp = datetime(2000, 1, 1, tzinfo=UTC)

    # --- clock -------------------------------------------------------------
    def now(self) -> datetime:
        """Strictly increasing, so every change is newer than the one before it."""
        stamp = max(datetime.now(UTC), self._last_stamp + timedelta(microseconds=1))
        self._last_stamp = stamp
        return stamp

    # --- tokens --------------------------------------------------------------
    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens_issued += 1
        self._tokens[token] = time.monotonic() + self.token_ttl_s
        return token

    def token_valid(self, token: str) -> bool:
        expiry = self._tokens.get(token)
        return expiry is not None and expiry > time.monotonic()

    def expire_tokens(self) -> None:
        """Every token given so far is refused from now on (401)."""
        self._tokens.clear()

    # --- employees -------------------------------------------------------------
    def put_employee(self, row: EmployeeRow) -> EmployeeRow:
        self.employees[row.id] = row
        return row

    def fire_employee(self, employee_id: str) -> None:
        row = self.employees[employee_id]
        row.is_working = False
        row.fire_day = self.now().date().isoformat()
        row.time_updated = self.now()

    def block_employee(self, employee_id: str, blocked: bool = True) -> None:
        row = self.employees[employee_id]
        row.can_login = not blocked
        row.time_updated = self.now()

    def employee_list(self) -> list[EmployeeRow]:
        return sorted(self.employees.values(), key=lambda e: _id_key(e.id))

    # --- clients ---------------------------------------------------------------
    def new_client_id(self) -> str:
        while str(self._next_client_id) in self.clients:
            self._next_client_id += 1
        oid = str(self._next_client_id)
        self._next_client_id += 1
        return oid

    def put_client(self, row: ClientRow) -> ClientRow:
        """Insert or replace (keeps indexes right); does not touch timeUpdated."""
        if not row.id.isdigit():
            raise ValueError(f"client id must be digits: {row.id!r}")
        old = self.clients.get(row.id)
        if old is not None:
            self._unindex_phones(old)
        else:
            bisect.insort(self._id_keys, int(row.id))
        self.clients[row.id] = row
        for phone in row.phones:
            self._by_phone.setdefault(normalise_digits(phone), set()).add(row.id)
        self._by_updated = None
        return row

    def _unindex_phones(self, row: ClientRow) -> None:
        for phone in row.phones:
            ids = self._by_phone.get(normalise_digits(phone))
            if ids is not None:
                ids.discard(row.id)
                if not ids:
                    del self._by_phone[normalise_digits(phone)]

    def add_client(
        self,
        *,
        name: str,
        phones: Sequence[str],
        responsibles: Iterable[Ref] = (),
        kind: Kind = "human",
        client_id: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> ClientRow:
        stamp = self.now()
        first, _, last = name.partition(" ")
        row = ClientRow(
            id=client_id or self.new_client_id(),
            kind=kind,
            name=name,
            first_name=first if kind == "human" else "",
            last_name=last if kind == "human" else "",
            phones=list(phones),
            responsibles=list(responsibles),
            time_created=stamp,
            time_updated=stamp,
            extra=dict(extra or {}),
        )
        return self.put_client(row)

    def update_client(
        self,
        client_id: str,
        *,
        name: str | None = None,
        phones: Sequence[str] | None = None,
        responsibles: Iterable[Ref] | None = None,
        extra: dict[str, str] | None = None,
    ) -> ClientRow:
        row = self.clients[client_id]
        self._unindex_phones(row)
        if name is not None:
            row.name = name
        if phones is not None:
            row.phones = list(phones)
        if responsibles is not None:
            row.responsibles = list(responsibles)
        if extra:
            row.extra.update(extra)
        row.time_updated = self.now()
        return self.put_client(row)

    def set_responsibles(self, client_id: str, responsibles: Iterable[Ref]) -> ClientRow:
        return self.update_client(client_id, responsibles=responsibles)

    def drop_client(self, client_id: str, dropped: bool = True) -> ClientRow:
        row = self.clients[client_id]
        row.is_dropped = dropped
        row.time_updated = self.now()
        self._by_updated = None
        return row

    def bump(self, client_id: str) -> ClientRow:
        """Touch timeUpdated only, as an unrelated edit in the CRM would."""
        row = self.clients[client_id]
        row.time_updated = self.now()
        self._by_updated = None
        return row

    # --- queries ---------------------------------------------------------------
    def client_ids_by_id(self) -> list[int]:
        return self._id_keys

    def client_ids_by_updated(self) -> tuple[list[str], dict[str, int]]:
        """Ids newest first (ties: larger id first); cached until the next change."""
        if self._by_updated is None:
            rows = sorted(
                self.clients.values(),
                key=lambda r: (r.time_updated, int(r.id)),
                reverse=True,
            )
            self._by_updated = [r.id for r in rows]
            self._updated_pos = {oid: i for i, oid in enumerate(self._by_updated)}
        return self._by_updated, self._updated_pos

    def clients_by_phone(self, raw: str) -> list[ClientRow]:
        ids = self._by_phone.get(normalise_digits(raw), set())
        return sorted((self.clients[i] for i in ids), key=lambda r: int(r.id))

    # --- writes ----------------------------------------------------------------
    def record_write(self, method: str, path: str, body: Any) -> None:
        self.writes.append(Write(method=method, path=path, body=body))

    def create_client(self, row: ClientRow) -> ClientRow:
        """A client made through the API: a new id, counted in ``applied``."""
        row.id = self.new_client_id()
        self.put_client(row)
        self.created_client_ids.append(row.id)
        self.applied["client_created"] += 1
        return row

    def add_deal(self, deal: dict[str, Any]) -> dict[str, Any]:
        deal["id"] = str(self._next_deal_id)
        self._next_deal_id += 1
        self.deals[deal["id"]] = deal
        self.applied["deal_created"] += 1
        return deal

    def add_comment(self, comment: dict[str, Any]) -> dict[str, Any]:
        comment["id"] = str(self._next_comment_id)
        self._next_comment_id += 1
        self.comments.append(comment)
        self.applied["comment_added"] += 1
        return comment

    def record_call(self, call: dict[str, Any]) -> dict[str, Any]:
        """Idempotent by providerId: a repeat updates the stored call (fields it posts
        replace those stored, say recordLinks added later), never stores it twice."""
        provider_id = str(call["providerId"])
        self.call_posts[provider_id] += 1
        old = self.call_infos.get(provider_id)
        self.applied["call_recorded" if old is None else "call_updated"] += 1
        stored = call if old is None else {**old, **call}
        self.call_infos[provider_id] = stored
        return stored


def _id_key(oid: str) -> tuple[int, str]:
    return (int(oid), oid) if oid.isdigit() else (1 << 62, oid)

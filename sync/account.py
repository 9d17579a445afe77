"""CRM → database: full and incremental passes for one account (PROTOCOLS §3, issue #5).

The CRM's request budget is what limits a sync, so lists are read a page of
100 at a time with only the fields routing needs: 100,000 clients cost about
a thousand requests. Pages are parsed while the previous batch is written;
each batch of clients is one ``write_clients`` transaction (phones and
responsibles replaced together), so routing never sees a client half written,
and the triggers carry every change to every replica's index. Clients that
did not change are not rewritten.

A malformed record is logged with its id and skipped. A pass that fails keeps
what it wrote: an incremental pass resumes from its watermark, a full pass from
the last batch it wrote (``FullPass``). Clients gone from the CRM are marked
dropped only after a complete full pass.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self, cast

import aiohttp
import asyncpg

from lookup.accounts import Account
from lookup.conn import Conn
from lookup.importer import ClientRecord, write_clients, write_employees
from mango.client import PbxClient
from megaplan import mapping as mp
from megaplan.client import CrmObserver, MegaplanClient
from megaplan.credentials import MegaplanCredentials
from megaplan.errors import MappingError, MegaplanError
from sync.metrics import SyncMetrics
from sync.pbx_users import fetch_extensions
from sync.records import client_record, employee_record, line_field_name
from sync.store import (
    SyncReport,
    changed_clients,
    current_extensions,
    deactivate_unseen_employees,
    drop_unseen_clients,
    record_error,
    record_full,
    record_incremental,
    start_full,
    write_programs,
)

logger = logging.getLogger(__name__)

__all__ = ["AccountSync", "CrmHealth", "FullPass", "SyncOptions", "SyncReport", "crm_observer"]

CONTRACTORS = "/api/v3/contractor"
EMPLOYEES = "/api/v3/employee"
SYNC_ERRORS = (MegaplanError, MappingError, aiohttp.ClientError, OSError, TimeoutError,
               asyncpg.PostgresError, asyncpg.InterfaceError)
# What the CRM may answer for programs and client fields (no rights to deals, one field
# it cannot describe) without the clients' copy, which routing needs, waiting on them.
_SIDE_ERRORS = (MegaplanError, MappingError)

Progress = Callable[[SyncReport], None]
# Hears of every CRM call of an account: (account id, None when the CRM answered,
# else a short reason). The app's health notes (router.health) are one.
CrmHealth = Callable[[int, str | None], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncOptions:
    rate: float | None = 3.0  # CRM requests per second, at most
    batch: int = 1000  # clients per database transaction
    overlap_s: float = 2.0  # incremental reads go back this far behind the watermark
    max_retries: int = 4
    backoff_base: float = 0.5
    request_timeout: float = 30.0


@dataclass(slots=True, kw_only=True)
class FullPass:
    """A full pass in progress; kept after a failure so the next attempt resumes it."""

    started_at: datetime
    started: float  # time.monotonic()
    watermark: datetime | None = None  # the CRM's newest timeUpdated when the pass began
    cursor: dict[str, Any] | None = None  # pageAfter of the last client written
    seen: set[str] = field(default_factory=set)
    clients: int = 0
    written: int = 0
    errors: int = 0
    requests: int = 0


def megaplan_credentials(account: Account) -> MegaplanCredentials | None:
    """The account's CRM login; None without one, or with a URL that is not http(s)
    (stored before ``account add`` checked it: an ERROR once, and no CRM work)."""
    if not (account.megaplan_url and account.megaplan_username and account.megaplan_password):
        return None
    try:
        return MegaplanCredentials(base_url=account.megaplan_url,
                                   username=account.megaplan_username,
                                   password=account.megaplan_password)
    except ValueError as exc:
        _refuse_url(account.name, account.megaplan_url, str(exc))
        return None


@functools.cache
def _refuse_url(account: str, url: str, why: str) -> None:
    logger.error("the account's Megaplan URL will not do; no CRM work for it",
                 extra={"account": account, "url": url, "error": why})


def crm_observer(account_id: int, health: CrmHealth | None) -> CrmObserver | None:
    """The CRM client's observer that tells ``health`` of this account's calls."""
    if health is None:
        return None

    def observe(reason: str | None) -> None:
        health(account_id, reason)
    return observe


class AccountSync:
    """Sync of one account over one connection; ``async with`` holds its CRM session."""

    def __init__(self, account: Account, con: Conn, pbx: PbxClient, *,
                 options: SyncOptions = SyncOptions(), metrics: SyncMetrics | None = None,
                 progress: Progress | None = None, health: CrmHealth | None = None) -> None:
        credentials = megaplan_credentials(account)
        if credentials is None:
            raise ValueError(f"account {account.name!r} has no Megaplan settings")
        self.account = account
        self._con = con
        self._pbx = pbx
        self._options = options
        self._metrics = metrics
        self._progress = progress
        self._line_field: str | None = None
        self._line_field_known = False
        self.crm = MegaplanClient(credentials, rate_per_second=options.rate,
                                  max_retries=options.max_retries,
                                  backoff_base=options.backoff_base,
                                  request_timeout=options.request_timeout,
                                  observer=crm_observer(account.id, health))

    async def __aenter__(self) -> Self:
        await self.crm.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.crm.close()

    def _scrub(self, text: str) -> str:
        for secret in (self.account.megaplan_password, self.account.mango_api_salt):
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- passes ----------------------------------------------------------------
    async def full(self, resume: FullPass | None = None) -> tuple[SyncReport, FullPass]:
        """A full pass (or the rest of ``resume``); the report says whether it completed."""
        run = resume or FullPass(started_at=datetime.now(UTC), started=time.monotonic())
        report = SyncReport(kind="full", started_at=run.started_at)
        before = self.crm.request_count
        try:
            if resume is None:
                await start_full(self._con, self.account.id, run.started_at)
                run.watermark = await self._newest_update()
            await self._load_line_field(force=True)
            try:
                await write_programs(self._con, self.account.id, await self.crm.programs())
            except _SIDE_ERRORS as exc:  # the deal states stay as they were
                self._side_error("programs", exc)
            report.employees, errors = await self._employees()
            run.errors += errors
            await self._clients_full(run, report)
            report.dropped = await drop_unseen_clients(self._con, self.account.id, run.seen)
            report.complete = True
        except SYNC_ERRORS as exc:
            report.error = self._scrub(f"{type(exc).__name__}: {exc}")
        run.requests += self.crm.request_count - before
        report.clients, report.written, report.errors = run.clients, run.written, run.errors
        report.requests = run.requests
        report.duration_s = time.monotonic() - run.started
        await self._finish(report, run.watermark)
        return report, run

    async def incremental(self, watermark: datetime, *, seen: set[str] | None = None
                          ) -> SyncReport:
        """Employees, and clients changed since ``watermark`` (less the overlap); the ids
        read are added to ``seen`` (a full pass's, when it runs between its attempts)."""
        started = time.monotonic()
        report = SyncReport(kind="incremental", started_at=datetime.now(UTC))
        before = self.crm.request_count
        newest: datetime | None = None
        try:
            await self._load_line_field()
            report.employees, report.errors = await self._employees()
            since = watermark - timedelta(seconds=self._options.overlap_s)
            params = {"sortBy": mp.sort_by_time_updated_desc()}
            batch: list[ClientRecord] = []
            async with aclosing(self._parsed_clients(params, report)) as clients:
                async for client in clients:
                    if client.time_updated is not None:
                        if client.time_updated < since:
                            break
                        newest = client.time_updated if newest is None else max(
                            newest, client.time_updated)
                    report.clients += 1
                    if seen is not None:
                        seen.add(client.id)
                    batch.append(self._record(client, report))
                    if len(batch) >= self._options.batch:
                        report.written += await self._write(batch)
                        batch = []
            report.written += await self._write(batch)
            report.complete = True
        except SYNC_ERRORS as exc:
            report.error = self._scrub(f"{type(exc).__name__}: {exc}")
        report.requests = self.crm.request_count - before
        report.duration_s = time.monotonic() - started
        await self._finish(report, newest if report.complete else None)
        return report

    async def _finish(self, report: SyncReport, watermark: datetime | None) -> None:
        m = self._metrics
        if m is not None:
            name = self.account.name
            m.duration.labels(name, report.kind).observe(report.duration_s)
            m.records.labels(name, "clients").inc(report.clients)
            m.records.labels(name, "employees").inc(report.employees)
            if report.errors:
                m.errors.labels(name, "record").inc(report.errors)
            if report.error:
                m.errors.labels(name, "pass").inc()
            if report.complete:
                m.success[self.account.id] = (self.account.name, time.time() - report.duration_s)
        try:
            if report.complete:
                if report.kind == "full":
                    await record_full(self._con, self.account.id, report, watermark)
                else:
                    await record_incremental(self._con, self.account.id, report, watermark)
            else:
                await record_error(self._con, self.account.id,
                                   f"{report.kind} sync: {report.error}")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            logger.warning("sync: cannot record the sync state", extra={
                "account": self.account.name, "error": repr(exc)})
        log = logger.info if report.complete else logger.warning
        log(report.summary(), extra={"account": self.account.name})

    # --- parts -----------------------------------------------------------------
    async def _newest_update(self) -> datetime | None:
        """The CRM's newest timeUpdated: where incremental reads start after this pass."""
        query = {"limit": 1, "sortBy": mp.sort_by_time_updated_desc(),
                 "fields": [mp.F_TIME_UPDATED], "onlyRequestedFields": True}
        data, _ = await self.crm.request("GET", CONTRACTORS, params=query)
        if isinstance(data, list) and data and isinstance(data[0], dict):
            try:
                return mp.parse_datetime(data[0].get(mp.F_TIME_UPDATED))
            except ValueError:
                return None
        return None

    def _side_error(self, what: str, exc: Exception) -> None:
        logger.warning("sync: the CRM's %s could not be read; the clients are synced all the "
                       "same", what, extra={"account": self.account.name,
                                            "error": self._scrub(f"{type(exc).__name__}: {exc}")})

    async def _load_line_field(self, *, force: bool = False) -> None:
        if force or not self._line_field_known:
            try:
                fields = await self.crm.extra_fields()
            except _SIDE_ERRORS as exc:  # looked up again on the next pass
                self._side_error("client fields", exc)
                return
            self._line_field = line_field_name(fields)
            self._line_field_known = True
            if self._line_field is None:
                logger.info("sync: the CRM has no field «Номер линии MANGO OFFICE»",
                            extra={"account": self.account.name})

    async def _employees(self) -> tuple[int, int]:
        """Every employee, with extensions from the PBX; returns (read, refused)."""
        employees: list[mp.Employee] = []
        errors = 0
        complete_list = True
        async for obj in self.crm.iter_list(EMPLOYEES, fields=mp.EMPLOYEE_LIST_FIELDS):
            try:
                employees.append(mp.parse_employee(obj))
            except MappingError as exc:
                errors += 1
                complete_list = False  # do not deactivate someone we could not read
                logger.warning("sync: employee %s skipped: %s", exc.object_id, exc.reason,
                               extra={"account": self.account.name})
        extensions = await fetch_extensions(self._pbx, self.account)
        if extensions is None:
            errors += 1
        current = await current_extensions(self._con, self.account.id)
        await write_employees(self._con, self.account.id,
                              [employee_record(e, extensions, current) for e in employees])
        if complete_list:
            await deactivate_unseen_employees(self._con, self.account.id,
                                              [e.id for e in employees])
        return len(employees), errors

    def _fields(self) -> list[str]:
        extra = [self._line_field] if self._line_field else []
        return [*mp.CLIENT_LIST_FIELDS, *extra]

    async def _parsed_clients(self, params: Mapping[str, Any], report: SyncReport | FullPass,
                              on_page: Callable[[dict[str, Any]], None] | None = None
                              ) -> AsyncGenerator[mp.Client, None]:
        extra = [self._line_field] if self._line_field else []
        pages = cast(AsyncGenerator[dict[str, Any], None],  # iter_list is a generator
                     self.crm.iter_list(CONTRACTORS, params, fields=self._fields()))
        async with aclosing(pages):
            async for obj in pages:
                if on_page is not None:
                    on_page(obj)
                try:
                    client = mp.parse_client(obj, extra)
                except MappingError as exc:
                    report.errors += 1
                    logger.warning("sync: client %s skipped: %s", exc.object_id, exc.reason,
                                   extra={"account": self.account.name})
                    continue
                yield client

    def _record(self, client: mp.Client, report: SyncReport | FullPass) -> ClientRecord:
        record, bad = client_record(client, self.account.settings.default_region,
                                    self._line_field)
        report.errors += bad
        return record

    async def _write(self, batch: list[ClientRecord]) -> int:
        if not batch:
            return 0
        changed = await changed_clients(self._con, self.account.id, batch)
        # the line is left as it is while the CRM's fields could not be read
        await write_clients(self._con, self.account.id, changed,
                            sets_line_number=self._line_field_known)
        return len(changed)

    async def _clients_full(self, run: FullPass, report: SyncReport) -> None:
        """Clients by id from the cursor; one batch is written while the next is read."""
        params: dict[str, Any] = {}
        if run.cursor is not None:
            params["pageAfter"] = run.cursor
        last: list[dict[str, Any]] = []
        before = self.crm.request_count
        batch: list[ClientRecord] = []
        pending: asyncio.Future[None] | None = None

        async def write(records: list[ClientRecord], cursor: dict[str, Any] | None) -> None:
            run.written += await self._write(records)
            run.seen.update(r.id for r in records)
            run.cursor = cursor
            if self._progress is not None:
                report.clients, report.written, report.errors = (
                    run.clients, run.written, run.errors)
                report.requests = run.requests + self.crm.request_count - before
                self._progress(report)

        clients = self._parsed_clients(params, run, on_page=_keep_last(last, run.seen))
        try:
            async with aclosing(clients):
                async for client in clients:
                    run.clients += 1
                    batch.append(self._record(client, run))
                    if len(batch) >= self._options.batch:
                        if pending is not None:
                            await pending
                        pending = asyncio.ensure_future(write(batch, mp.page_after(last[0])))
                        batch = []
            if pending is not None:
                await pending
                pending = None
            await write(batch, mp.page_after(last[0]) if last else run.cursor)
        finally:
            if pending is not None:  # a read failed: the batch being written still counts
                with suppress(Exception):  # the first failure is the one reported
                    await pending


def _keep_last(holder: list[dict[str, Any]], seen: set[str]
               ) -> Callable[[dict[str, Any]], None]:
    """Remember the last object read (the cursor) and every id listed, readable or not."""

    def keep(obj: dict[str, Any]) -> None:
        oid = mp.page_after(obj).get(mp.F_ID)
        if oid is not None:
            seen.add(str(oid))
        if holder:
            holder[0] = obj
        else:
            holder.append(obj)
    return keep



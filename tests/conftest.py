"""Shared test fixtures: a real embedded PostgreSQL, a fresh database per test, the
real app on loopback, and the PBX emulator as a real HTTP server."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer

from emulators.megaplan import MegaplanState, generate, serve_megaplan
from emulators.pbx import PbxCaller, PbxState, create_pbx_app
from lookup.accounts import upsert_default_account
from lookup.embedded import ensure_embedded
from lookup.importer import import_lines
from lookup.schema import apply_migrations
from router.app import create_app
from router.config import Config, load_config

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """One embedded PostgreSQL server for the whole run (TEST_DATABASE_URL wins when set).

    Its directory is outside pytest's private temp tree: the server runs as its
    own system user, which must be able to reach it.
    """
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    dsn = ensure_embedded(Path(tempfile.mkdtemp(prefix="mango-router-test-")), throwaway=True)
    asyncio.run(_no_waiting_for_the_disk(dsn))
    yield dsn


async def _no_waiting_for_the_disk(dsn: str) -> None:
    """A throwaway server need not survive a crash: nothing waits for the disk, so a
    slow flush of the shared CI host does not stall the tests' commits. (Commits stay
    synchronous: an asynchronous one's rows are not all-visible to VACUUM at once.)"""
    con = await asyncpg.connect(dsn)
    try:
        for setting in ("fsync", "full_page_writes"):
            await con.execute(f"ALTER SYSTEM SET {setting} = off")
        await con.execute("SELECT pg_reload_conf()")
    finally:
        await con.close()


def _with_db(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def template_db(pg_dsn: str) -> str:
    """A migrated database that every test's database is copied from."""
    asyncio.run(_make_template(pg_dsn))
    return "mr_template"


async def _make_template(pg_dsn: str) -> None:
    con = await asyncpg.connect(pg_dsn)
    try:
        await con.execute("DROP DATABASE IF EXISTS mr_template")
        await con.execute("CREATE DATABASE mr_template")
    finally:
        await con.close()
    con = await asyncpg.connect(_with_db(pg_dsn, "mr_template"))
    try:
        await apply_migrations(con)
    finally:
        await con.close()


@asynccontextmanager
async def throwaway_database(pg_dsn: str, template: str) -> AsyncIterator[str]:
    """A new database copied from ``template``, dropped afterwards; yields its DSN."""
    name = f"mr_test_{os.getpid()}_{next(_counter)}"
    con = await asyncpg.connect(pg_dsn)
    try:
        await con.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    finally:
        await con.close()
    try:
        yield _with_db(pg_dsn, name)
    finally:
        con = await asyncpg.connect(pg_dsn)
        try:
            await con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await con.close()


@pytest.fixture
async def dsn(pg_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    async with throwaway_database(pg_dsn, template_db) as url:
        yield url


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    con = await asyncpg.connect(dsn)
    yield con
    await con.close()


def make_config(dsn: str, **env: str) -> Config:
    values = {
        "DATABASE_URL": dsn,
        "MANGO_API_KEY": "test-key",
        "MANGO_API_SALT": "test-salt",
        "ROUTER_ADMIN_TOKEN": "operator-token",
        "ROUTER_SECRET_KEY": "test-secret-key-of-at-least-32-characters",
        "ROUTER_LOG_LEVEL": "WARNING",
        # in the test's own process (a child per app would cost each test a second);
        # tests/router/test_automation_process.py runs the child
        "ROUTER_AUTOMATION": "inline",
    }
    values.update(env)
    return load_config(environ=values, env_file=None)


@pytest.fixture
async def pbx() -> AsyncIterator[tuple[PbxState, str]]:
    """The PBX emulator on loopback: its state and its API base URL."""
    state = PbxState(api_key="test-key", salt="test-salt")
    server = TestServer(create_pbx_app(state))
    await server.start_server()
    yield state, str(server.make_url("/vpbx/"))
    await server.close()


@dataclass
class Service:
    """The real app under test, its PBX emulator and a PBX-side caller."""

    client: TestClient[Any, Any]
    pbx: PbxState
    caller: PbxCaller
    dsn: str

    async def event(self, kind: str, payload: dict[str, Any] | str) -> tuple[int, str]:
        return await self.caller.post(kind, payload)


ServiceFactory = Callable[..., Awaitable[Service]]


async def metrics_showing(svc: Service, *lines: str, within: float = 5.0) -> str:
    """``/metrics`` once it has every line: a route's counters go up when the PBX's
    answer is read, a moment after the emulator recorded the command."""
    deadline = time.monotonic() + within
    while True:
        text = await (await svc.client.get("/metrics")).text()
        if all(line in text for line in lines) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.02)


@pytest.fixture
async def service_factory(
    dsn: str, pbx: tuple[PbxState, str]
) -> AsyncIterator[ServiceFactory]:
    """Build the real app (``create_app(config)``) on the test database and PBX emulator."""
    clients: list[TestClient[Any, Any]] = []
    sessions: list[ClientSession] = []
    state, pbx_url = pbx

    async def make(**env: str) -> Service:
        config = make_config(dsn, MANGO_API_URL=pbx_url, **env)
        client = TestClient(TestServer(create_app(config)))
        await client.start_server()
        clients.append(client)
        session = ClientSession()
        sessions.append(session)
        state.callback_url = str(client.make_url("/mango"))
        caller = PbxCaller(session, str(client.make_url("/mango")), api_key="test-key",
                           salt="test-salt", state=state)
        return Service(client=client, pbx=state, caller=caller, dsn=dsn)

    yield make
    for session in sessions:
        await session.close()
    for client in clients:
        await client.close()


@pytest.fixture
async def service(service_factory: ServiceFactory) -> Service:
    return await service_factory()


async def load_records(dsn: str, records: list[dict[str, Any]], *,
                       account_id: int | None = None) -> None:
    """Import records (dicts in the import format) into the ``default`` account."""
    con = await asyncpg.connect(dsn)
    try:
        if account_id is None:
            account_id = await upsert_default_account(
                con, mango_api_key="test-key", mango_api_salt="test-salt",
                mango_api_url="http://127.0.0.1:1/vpbx/", megaplan=(None, None, None))
        data = b"\n".join(orjson.dumps(r) for r in records)
        report = await import_lines(con, account_id, io.BytesIO(data))
        assert not report.errors, report.errors
    finally:
        await con.close()


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    return path


def call_event(entry: str, number: str, *, seq: int = 1, state: str = "Appeared",
               location: str = "ivr", call_id: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """An ``events/call`` body as the PBX sends it."""
    body: dict[str, Any] = {
        "entry_id": entry,
        "call_id": call_id or f"{entry}-ivr",
        "timestamp": 1700000000,
        "seq": seq,
        "call_state": state,
        "location": location,
        "from": {"number": number},
        "to": {"number": "74951112233", "line_number": "74951112233"},
        "disconnect_reason": 0,
    }
    body.update(extra)
    return body


# --- the Megaplan emulator, live on loopback (megaplan and sync tests) ---------------
PASSWORD = "s3cret-Pa55word"

@pytest.fixture
def mp_state() -> MegaplanState:
    state = generate(clients=250, seed=7)
    state.password = PASSWORD
    return state


@pytest.fixture
async def mp_url(mp_state: MegaplanState) -> AsyncIterator[str]:
    async with serve_megaplan(mp_state) as url:
        yield url

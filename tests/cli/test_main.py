"""The command line and real ``serve`` processes: exit codes, replicas, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from emulators.pbx import PbxCaller, PbxState
from lookup.accounts import hash_token
from tests.conftest import call_event, load_records, write_jsonl
from tests.router.data import ALL, ROUTED

ENV = {"MANGO_API_KEY": "test-key", "MANGO_API_SALT": "test-salt",
       "ROUTER_ADMIN_TOKEN": "operator-token", "ROUTER_LOG_LEVEL": "WARNING"}


async def run_cli(*args: str, dsn: str | None, **env: str) -> tuple[int, str, str]:
    full_env = {**os.environ, **ENV, **env}
    if dsn is not None:
        full_env["DATABASE_URL"] = dsn
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", *args, env=full_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_bad_config_value_exits_2_naming_the_variable() -> None:
    code, _, err = await run_cli("route", ROUTED, dsn="postgresql://x/y", ROUTE_DEADLINE_MS="soon")
    assert code == 2
    assert "ROUTE_DEADLINE_MS" in err


async def test_key_without_salt_exits_2_naming_the_salt() -> None:
    code, _, err = await run_cli("route", ROUTED, dsn="postgresql://x/y", MANGO_API_SALT="")
    assert code == 2
    assert "MANGO_API_SALT" in err


@pytest.mark.parametrize(
    ("number", "code", "expected"),
    [
        ("+7 916 123-45-67", 0, {"number": ROUTED, "client_id": "10", "employee_id": "1",
                                 "extension": "101"}),
        ("79160000005", 1, {"number": "79160000005", "reason": "no_active_responsible"}),
        ("79990000000", 1, {"number": "79990000000", "reason": "no_client"}),
    ],
)
async def test_route_prints_the_decision_and_exits_by_outcome(
    dsn: str, number: str, code: int, expected: dict[str, str]
) -> None:
    await load_records(dsn, ALL)
    got_code, out, _ = await run_cli("route", number, dsn=dsn)
    assert (got_code, orjson.loads(out)) == (code, expected)


async def test_route_exits_2_for_a_bad_number_or_unknown_account(dsn: str) -> None:
    await load_records(dsn, ALL)
    assert (await run_cli("route", "12", dsn=dsn))[0] == 2
    assert (await run_cli("route", ROUTED, "--account", "nobody", dsn=dsn))[0] == 2


async def test_import_reports_bad_lines_and_exits_1(dsn: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", ALL)
    with path.open("ab") as f:
        f.write(b"{broken\n")
    code, out, err = await run_cli("import", str(path), dsn=dsn)
    assert code == 1
    assert f"{path}:{len(ALL) + 1}: not JSON" in err
    assert "7 clients" in out
    code, _, _ = await run_cli("import", str(write_jsonl(tmp_path / "ok.jsonl", ALL)), dsn=dsn)
    assert code == 0


async def test_accounts_are_added_listed_and_removed(dsn: str) -> None:
    code, out, _ = await run_cli("account", "add", "acme", "--mango-key", "k2",
                                 "--mango-salt", "s2", dsn=dsn)
    assert code == 0
    token = out.strip().splitlines()[-1]
    assert len(token) > 30
    con = await asyncpg.connect(dsn)
    try:
        stored = await con.fetchval("SELECT token_hash FROM accounts WHERE name = 'acme'")
    finally:
        await con.close()
    assert stored
    assert token not in stored  # only its hash is kept
    assert (await run_cli("account", "add", "acme", "--mango-key", "k3", "--mango-salt", "s",
                          dsn=dsn))[0] == 1
    _, listed, _ = await run_cli("account", "list", dsn=dsn)
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["default", "acme"]
    code, _, err = await run_cli("account", "remove", "acme", dsn=dsn)  # no terminal to ask
    assert code == 1
    assert "--yes" in err
    _, listed, _ = await run_cli("account", "list", dsn=dsn)
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["default", "acme"]
    assert (await run_cli("account", "remove", "acme", "--yes", dsn=dsn))[0] == 0
    _, listed, _ = await run_cli("account", "list", dsn=dsn)
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["default"]


@pytest.mark.parametrize("name", ["a b", "acme'", "", "x" * 65, "имя"])
async def test_an_account_name_is_letters_digits_dashes_and_underscores(
    dsn: str, name: str,
) -> None:
    code, _, err = await run_cli("account", "add", name, "--mango-key", "k2",
                                 "--mango-salt", "s2", dsn=dsn)
    assert code == 2
    assert "letters, digits" in err


@pytest.mark.parametrize(("flag", "url"), [("--megaplan-url", "crm.example.com"),
                                            ("--megaplan-url", "ftp://crm.example.com"),
                                            ("--megaplan-url", "HTTPS://crm.example.com"),
                                            ("--mango-url", "app.mango-office.ru/vpbx")])
async def test_an_account_whose_url_is_not_http_is_refused_and_not_stored(
    dsn: str, flag: str, url: str,
) -> None:
    code, _, err = await run_cli("account", "add", "acme", "--mango-key", "k2",
                                 "--mango-salt", "s2", flag, url, "--megaplan-user", "u",
                                 "--megaplan-password", "p", dsn=dsn)
    assert code == 2
    assert "must be an http(s) URL" in err
    _, listed, _ = await run_cli("account", "list", dsn=dsn)
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["default"]


async def test_a_new_token_replaces_the_old_one(dsn: str) -> None:
    _, out, _ = await run_cli("account", "add", "acme", "--mango-key", "k2",
                              "--mango-salt", "s2", dsn=dsn)
    old = out.strip().splitlines()[-1]
    code, out, _ = await run_cli("account", "token", "acme", dsn=dsn)
    assert code == 0
    new = out.strip().splitlines()[-1]
    assert new != old
    con = await asyncpg.connect(dsn)
    try:
        stored = await con.fetchval("SELECT token_hash FROM accounts WHERE name = 'acme'")
    finally:
        await con.close()
    assert stored == hash_token(new)
    assert (await run_cli("account", "token", "nobody", dsn=dsn))[0] == 1


async def test_database_options_work_after_the_command_too(dsn: str) -> None:
    await load_records(dsn, ALL)
    code, out, _ = await run_cli("route", ROUTED, "--database-url", dsn, dsn=None)
    assert code == 0
    assert '"extension":"101"' in out


async def test_a_port_in_use_is_one_line_naming_it_and_exit_2(dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await run_cli("serve", "--port", str(port), dsn=dsn)
    assert code == 2
    assert err.strip().count("\n") == 0  # one line, no traceback
    assert f"127.0.0.1:{port}" in err


async def test_a_port_that_is_not_a_number_names_the_flag() -> None:
    code, _, err = await run_cli("serve", "--port", "notaport", dsn="postgresql://x/y")
    assert code == 2
    assert "--port" in err


class Serve:
    """A real ``mango-router serve`` process."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
async def serve_processes(
    dsn: str, pbx: tuple[PbxState, str]
) -> AsyncIterator[Any]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(**env: str) -> Serve:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "router", "serve", "--port", str(port),
            env={**os.environ, **ENV, "DATABASE_URL": dsn, "MANGO_API_URL": pbx[1], **env},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        procs.append(proc)
        serve = Serve(proc, port)
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(serve.url + "/readyz") as resp:
                        if resp.status == 200:
                            return serve
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("serve did not become ready")

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)


async def test_two_replicas_receiving_the_same_triggers_route_each_call_once(
    dsn: str, pbx: tuple[PbxState, str], serve_processes: Any
) -> None:
    await load_records(dsn, ALL)
    # a claim the database is slow to answer would be routed from memory on both (by
    # design, after 50 ms): here every claim is waited for
    first, second = (await serve_processes(ROUTER_CLAIM_TIMEOUT_MS="5000"),
                     await serve_processes(ROUTER_CLAIM_TIMEOUT_MS="5000"))
    state = pbx[0]
    async with aiohttp.ClientSession() as session:
        callers = [PbxCaller(session, s.url + "/mango", api_key="test-key", salt="test-salt")
                   for s in (first, second)]
        sends = [caller.post("events/call", call_event(f"e{i}", ROUTED))
                 for i in range(20) for caller in callers]
        results = await asyncio.gather(*sends)
    assert all(status == 200 for status, _ in results)
    await state.wait_routes(20, within=15.0)
    await state.wait_routes(21, within=1.0)  # and no second route of any
    routes = state.routes()
    assert sorted(r.payload["call_id"] for r in routes) == sorted(f"e{i}-ivr" for i in range(20))


async def test_import_while_serving_reaches_routing_within_a_second(
    dsn: str, serve_processes: Any, tmp_path: Path
) -> None:
    await load_records(dsn, ALL)
    serve = await serve_processes()
    change = [{"type": "client", "id": "10", "phones": ["+7 (916) 123-45-67"],
               "responsibles": [{"type": "employee", "id": "2"}]}]
    code, _, _ = await run_cli("import", str(write_jsonl(tmp_path / "c.jsonl", change)), dsn=dsn)
    assert code == 0
    imported = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(serve.url + "/route", params={"number": ROUTED}) as resp:
                extension = (await resp.json()).get("extension")
            if extension == "102" or time.monotonic() - imported > 1.0:
                break
            await asyncio.sleep(0.01)
    assert extension == "102"


async def test_account_added_while_serving_is_served_within_a_second(
    dsn: str, serve_processes: Any
) -> None:
    serve = await serve_processes()
    code, _, _ = await run_cli("account", "add", "acme", "--mango-key", "acme-key",
                               "--mango-salt", "acme-salt", dsn=dsn)
    assert code == 0
    added = time.monotonic()
    async with aiohttp.ClientSession() as session:
        caller = PbxCaller(session, serve.url + "/mango", api_key="acme-key", salt="acme-salt")
        while True:
            status, _ = await caller.post("ping", {})
            if status == 200 or time.monotonic() - added > 1.0:
                break
            await asyncio.sleep(0.02)
    assert status == 200


async def test_sigterm_lets_routes_in_flight_finish_and_flushes_the_records(
    dsn: str, pbx: tuple[PbxState, str], serve_processes: Any
) -> None:
    await load_records(dsn, ALL)
    state = pbx[0]
    state.behaviour.delay_ms = 400  # the PBX answers slowly: the route is in flight
    serve = await serve_processes()
    async with aiohttp.ClientSession() as session:
        caller = PbxCaller(session, serve.url + "/mango", api_key="test-key", salt="test-salt")
        status, _ = await caller.post("events/call", call_event("e1", ROUTED))
        assert status == 200
        await state.wait_routes(1)
        serve.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(serve.proc.wait(), 20) == 0
    con = await asyncpg.connect(dsn)
    try:
        rows = await con.fetch("SELECT outcome, pbx_result FROM decisions")
        events = await con.fetchval("SELECT count(*) FROM call_events")
    finally:
        await con.close()
    assert [(r["outcome"], r["pbx_result"]) for r in rows] == [("routed", 1000)]
    assert events == 1


async def test_database_url_that_is_not_postgresql_exits_2_naming_it() -> None:
    code, _, err = await run_cli("route", ROUTED, dsn="mysql://x/y")
    assert code == 2
    assert "DATABASE_URL" in err


async def test_unreachable_database_exits_2_with_a_message_not_a_traceback() -> None:
    code, _, err = await run_cli("route", ROUTED, dsn="postgresql://u@127.0.0.1:1/none")
    assert code == 2
    assert "cannot use DATABASE_URL" in err
    assert "Traceback" not in err

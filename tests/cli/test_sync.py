"""``mango-router sync``, ``employee`` and ``emulate megaplan|pbx`` as real processes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from emulators.megaplan import MegaplanState, generate, serve_megaplan
from emulators.megaplan_store import CT_EMPLOYEE
from emulators.pbx import PbxState
from emulators.pbx_users import users_for
from lookup.phones import phone_key
from tests.cli.test_main import ENV, free_port, run_cli

CRM_ENV = {"MEGAPLAN_USERNAME": "demo", "MEGAPLAN_PASSWORD": "demo", "MEGAPLAN_RATE": "1000"}


@pytest.fixture
async def crm(pbx: tuple[PbxState, str]) -> AsyncIterator[tuple[MegaplanState, dict[str, str]]]:
    state = generate(500, seed=2)
    pbx[0].users = users_for(state.employees.values())
    async with serve_megaplan(state) as url:
        yield state, {**CRM_ENV, "MEGAPLAN_URL": url, "MANGO_API_URL": pbx[1]}


def _routed_number(state: MegaplanState) -> tuple[str, str]:
    for row in sorted(state.clients.values(), key=lambda r: int(r.id)):
        ct, oid = row.responsibles[0]
        emp = state.employees.get(oid) if ct == CT_EMPLOYEE else None
        if (not row.is_dropped and emp is not None and emp.active and emp.extension
                and len(state.clients_by_phone(row.phones[0])) == 1):
            return str(phone_key(row.phones[0])), oid
    raise AssertionError("no routed client")


async def test_sync_loads_the_crm_then_route_answers_and_status_tells(
    dsn: str, crm: tuple[MegaplanState, dict[str, str]]
) -> None:
    state, env = crm
    code, out, err = await run_cli("sync", dsn=dsn, **env)
    assert code == 0, err
    assert "full sync done: 10 employees, 500 clients read" in out
    assert "sync default: 500 clients read" in err  # the progress line
    number, employee_id = _routed_number(state)
    code, out, _ = await run_cli("route", number, dsn=dsn, **env)
    assert code == 0
    assert orjson.loads(out)["extension"] == state.employees[employee_id].extension
    code, out, _ = await run_cli("sync", "--status", dsn=dsn, **env)
    status = orjson.loads(out)
    assert (code, status["full"]["clients"], status["last_error"]) == (0, 500, None)
    assert status["watermark"] is not None
    assert "demo" not in out.replace('"default"', "")  # no credentials in the status


async def test_sync_without_crm_settings_or_with_a_crm_down_says_so(
    dsn: str, crm: tuple[MegaplanState, dict[str, str]]
) -> None:
    code, _, err = await run_cli("sync", dsn=dsn)
    assert code == 2
    assert "MEGAPLAN_URL" in err
    state, env = crm
    state.faults.error_rate = 1.0
    code, out, err = await run_cli("sync", dsn=dsn, **{**env, "MEGAPLAN_PASSWORD": "s3cr3t-pw"})
    assert code == 1
    assert "FAILED" in out
    assert "s3cr3t-pw" not in out + err


async def test_employee_extension_set_by_hand_and_unmatched_list(
    dsn: str, crm: tuple[MegaplanState, dict[str, str]]
) -> None:
    state, env = crm
    assert (await run_cli("sync", dsn=dsn, **env))[0] == 0
    code, out, _ = await run_cli("employee", "unmatched", dsn=dsn, **env)
    no_extension = [e.id for e in state.employees.values() if not e.extension]
    assert code == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == no_extension
    number, employee_id = _routed_number(state)
    code, out, _ = await run_cli("employee", "set-extension", employee_id, "555", dsn=dsn, **env)
    assert code == 0
    assert orjson.loads(out)["manual"] is True
    assert orjson.loads((await run_cli("route", number, dsn=dsn, **env))[1])["extension"] == "555"
    assert (await run_cli("sync", dsn=dsn, **env))[0] == 0  # a sync keeps the hand-set one
    assert orjson.loads((await run_cli("route", number, dsn=dsn, **env))[1])["extension"] == "555"
    assert (await run_cli("employee", "set-extension", employee_id, "--auto", dsn=dsn,
                          **env))[0] == 0
    assert (await run_cli("sync", dsn=dsn, **env))[0] == 0
    routed = orjson.loads((await run_cli("route", number, dsn=dsn, **env))[1])
    assert routed["extension"] == state.employees[employee_id].extension
    assert (await run_cli("employee", "set-extension", employee_id, dsn=dsn, **env))[0] == 2
    assert (await run_cli("employee", "set-extension", "999", "1", dsn=dsn, **env))[0] == 1


async def _start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", *args, env={**os.environ, **ENV},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def _listening(port: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def test_emulators_started_from_the_command_line_feed_a_sync(dsn: str) -> None:
    mp_port, pbx_port = free_port(), free_port()
    procs = [
        await _start("emulate", "megaplan", "--port", str(mp_port), "--clients", "300",
                     "--seed", "5", "--latency-ms", "1"),
        await _start("emulate", "pbx", "--port", str(pbx_port), "--clients", "300", "--seed", "5",
                     "--key", "test-key", "--salt", "test-salt"),
    ]
    try:
        await _listening(mp_port)
        await _listening(pbx_port)
        env = {**CRM_ENV, "MEGAPLAN_URL": f"http://127.0.0.1:{mp_port}",
               "MANGO_API_URL": f"http://127.0.0.1:{pbx_port}/vpbx/"}
        code, out, err = await run_cli("sync", dsn=dsn, **env)
        assert code == 0, err
        assert "300 clients read" in out
        code, out, _ = await run_cli("employee", "unmatched", dsn=dsn, **env)
        expected = generate(300, seed=5)
        assert [line.split("\t")[0] for line in out.splitlines()] == [
            e.id for e in expected.employees.values() if not e.extension]
    finally:
        for proc in procs:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)

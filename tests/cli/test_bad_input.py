"""The command line given bad input exits 2 with a message naming what is wrong, never a
traceback nor a misleading "cannot use DATABASE_URL" (PROTOCOLS §4)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import orjson
import pytest

from tests.cli.test_main import ENV, run_cli
from tests.conftest import Service, load_records
from tests.router.data import ALL, ROUTED, add_programs

NO_DATABASE = "postgresql://127.0.0.1:1/none"  # never reached: the input is refused first


async def run_bytes(*args: bytes, dsn: str, **env: bytes) -> tuple[int, str, str]:
    """``run_cli`` with arguments and variables as bytes, which need not be UTF-8."""
    environ = {k.encode(): v.encode() for k, v in {**os.environ, **ENV}.items()}
    environ.update({b"DATABASE_URL": dsn.encode(), **{k.encode(): v for k, v in env.items()}})
    proc = await asyncio.create_subprocess_exec(
        sys.executable.encode(), b"-m", b"router", *args, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.parametrize("window", ["99999999d", "99999999999999999999d", "36501d",
                                    "9" * 5000 + "m"])
async def test_a_replay_window_no_date_can_reach_is_an_error_naming_since(
    tmp_path: Path, window: str,
) -> None:
    settings = tmp_path / "try.json"
    settings.write_bytes(b"{}")
    code, _, err = await run_cli("replay", "--since", window, "--settings", str(settings),
                                 dsn=NO_DATABASE)
    assert code == 2, err
    assert "argument --since" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("zone", ["Europe", "a" * 300])
async def test_replay_with_a_timezone_that_is_a_directory_names_the_setting(
    dsn: str, tmp_path: Path, zone: str,
) -> None:
    await load_records(dsn, ALL)
    settings = tmp_path / "try.json"
    settings.write_bytes(orjson.dumps({"timezone": zone}))
    code, _, err = await run_cli("replay", "--since", "24h", "--settings", str(settings),
                                 dsn=dsn)
    assert code == 2, err
    assert f"{settings}: timezone: must be an IANA time zone" in err
    assert "DATABASE_URL" not in err


async def test_replay_shows_a_call_start_no_date_can_hold_as_its_number(
    service: Service, db: asyncpg.Connection, tmp_path: Path,
) -> None:
    """A summary's times are only checked to be whole numbers below 2**53."""
    await load_records(service.dsn, ALL)
    await add_programs(db)
    start = 10**15
    status, _ = await service.event("events/summary", {
        "entry_id": "far-future", "call_direction": 1, "from": {"number": ROUTED},
        "to": {"extension": "101", "number": "74951112233"}, "line_number": "74951112233",
        "create_time": start, "forward_time": start + 6, "talk_time": start + 9,
        "end_time": start + 100, "entry_result": 1, "disconnect_reason": 1110})
    assert status == 200
    settings = tmp_path / "try.json"
    deal = {"program_id": "1", "state_id": "11"}
    settings.write_bytes(orjson.dumps({"repeat_calls": "always_deal", "accepted_deal": deal,
                                       "missed_deal": deal}))
    code, out, err = await run_cli("replay", "--since", "24h", "--settings", str(settings),
                                   dsn=service.dsn)
    assert code == 0, err
    assert f"far-future  {ROUTED}  {start} UTC  incoming, answered" in out


@pytest.mark.parametrize(("args", "named"), [
    ((b"route", b"\xff"), "argument number"),
    ((b"route", ROUTED.encode(), b"--account", b"shop\xff"), "argument --account"),
    ((b"account", b"remove", b"shop\xc3"), "argument name"),
    ((b"account", b"add", b"shop", b"--mango-key", b"k\xff", b"--mango-salt", b"s"),
     "argument --mango-key"),
    ((b"employee", b"set-extension", b"1\xfe", b"101"), "argument employee_id"),
])
async def test_an_argument_that_is_not_utf8_exits_2_naming_it(
    dsn: str, args: tuple[bytes, ...], named: str,
) -> None:
    code, _, err = await run_bytes(*args, dsn=dsn)
    assert code == 2, err
    assert f"error: {named}: is not UTF-8 text" in err
    assert "Traceback" not in err
    assert "cannot use DATABASE_URL" not in err


async def test_a_variable_that_is_not_utf8_exits_2_naming_it(dsn: str) -> None:
    code, _, err = await run_bytes(b"route", ROUTED.encode(), dsn=dsn, MANGO_API_KEY=b"k\xff")
    assert code == 2, err
    assert "bad configuration: MANGO_API_KEY: is not UTF-8 text" in err


@pytest.mark.parametrize(("variable", "value"), [
    ("DATABASE_URL", "postgresql://[::1"),
    ("DATABASE_URL", "postgresql://h:abc/db"),
    ("DATABASE_URL", "postgresql:///db?host=/tmp&port=abc"),
    ("DATABASE_URL", "postgresql://h/db?sslmode"),
    ("MANGO_CA_FILE", "a" * 5000),
])
async def test_a_variable_the_start_cannot_use_exits_2_naming_it(
    variable: str, value: str,
) -> None:
    env = {"MANGO_CA_FILE": value} if variable == "MANGO_CA_FILE" else {}
    code, _, err = await run_cli("route", ROUTED, dsn=NO_DATABASE if env else value, **env)
    assert code == 2, err
    assert f"bad configuration: {variable}: " in err
    assert "Traceback" not in err

"""The benchmark's lean PBX front: what the product and the floor send is checked and
recorded as the emulator does; what it cannot read gets a 400, never a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bench.pbxserver import serve_pbx
from emulators.pbx import PbxState
from lookup.accounts import Account
from lookup.settings import Settings
from mango.client import PbxClient, pbx_session
from mango.signing import sign

KEY, SALT = "bench-key", "bench-salt"


@pytest.fixture
async def pbx() -> AsyncIterator[tuple[PbxState, int]]:
    state = PbxState(api_key=KEY, salt=SALT, users=[{"extension": "101"}])
    async with serve_pbx(state, "127.0.0.1", 0) as server:
        yield state, server.sockets[0].getsockname()[1]


def _account(port: int, salt: str = SALT) -> Account:
    return Account(id=1, name="a", mango_api_key=KEY, mango_api_salt=salt,
                   mango_api_url=f"http://127.0.0.1:{port}/vpbx/", megaplan_url=None,
                   megaplan_username=None, megaplan_password=None, token_hash=None,
                   settings=Settings())


async def test_the_products_commands_are_recorded_on_one_kept_alive_connection(
    pbx: tuple[PbxState, int],
) -> None:
    state, port = pbx
    http = pbx_session()
    client = PbxClient(http)
    try:
        for i in range(3):
            got = await client.command(_account(port), "commands/route",
                                       {"call_id": f"c{i}", "to_number": "101"}, within=2)
            assert got.accepted
        users = await client.command(_account(port), "config/users/request", {}, within=2)
        assert users.body == {"result": 1000, "users": [{"extension": "101"}]}
        bad = await client.command(_account(port, salt="wrong"), "commands/route",
                                   {"call_id": "x"}, within=2)
        assert (bad.http_status, bad.result) == (401, 3102)
    finally:
        await http.close()
    assert [(c.command, c.payload.get("call_id")) for c in state.commands] == [
        ("commands/route", "c0"), ("commands/route", "c1"), ("commands/route", "c2"),
        ("config/users/request", None)]
    assert state.bad_signatures == 1


async def test_the_floors_aiohttp_form_posts_are_recorded(pbx: tuple[PbxState, int]) -> None:
    state, port = pbx
    raw = '{"call_id": "f1", "to_number": "100", "note": "пробел & знак"}'
    async with aiohttp.ClientSession() as session, session.post(
        f"http://127.0.0.1:{port}/vpbx/commands/route",
        data={"vpbx_api_key": KEY, "sign": sign(KEY, raw, SALT), "json": raw},
    ) as resp:
        assert resp.status == 200
        assert await resp.json() == {"result": 1000}
    assert state.routes()[0].payload["note"] == "пробел & знак"


async def _exchange(port: int, data: bytes, *, pieces: int = 1) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            writer.write(data[i:i + step])
            await writer.drain()
            await asyncio.sleep(0.01)
        return await asyncio.wait_for(reader.read(), 2)  # read to the server's close
    finally:
        writer.close()


def _post(path: str, body: bytes, *, extra: str = "Connection: close\r\n") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            ).encode() + body


async def test_a_request_split_across_packets_is_answered_once_complete(
    pbx: tuple[PbxState, int],
) -> None:
    state, port = pbx
    raw = '{"call_id":"split"}'
    body = f"vpbx_api_key={KEY}&sign={sign(KEY, raw, SALT)}&json={raw}".encode()
    answer = await _exchange(port, _post("/vpbx/commands/route", body), pieces=5)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b'{"result": 1000}')
    assert [c.payload for c in state.commands] == [{"call_id": "split"}]


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"POST /vpbx/commands/route HTTP/1.1\r\nContent-Length: nope\r\n\r\n", b"400"),
    (b"POST /vpbx/commands/route HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
    (_post("/vpbx/commands/route", b"json=%FF"), b"400"),
    (_post("/vpbx/commands/route", b"vpbx_api_key=bench-key"), b"400"),
    (_post("/elsewhere", b""), b"404"),
])
async def test_what_cannot_be_read_is_refused_and_nothing_recorded(
    pbx: tuple[PbxState, int], request_bytes: bytes, status: bytes,
) -> None:
    state, port = pbx
    answer = await _exchange(port, request_bytes)
    assert answer.split(b" ", 2)[1] == status
    assert state.commands == []

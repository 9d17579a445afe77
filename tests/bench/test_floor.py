"""The floor relay: a signed trigger is answered and routed to the fixed extension
through the product's VPBX client; anything else is answered and routed nowhere."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from bench.floor import FIXED_EXTENSION, FloorConfig, create_floor_app
from bench.pbxserver import serve_pbx
from emulators.pbx import PbxState
from mango.signing import sign

KEY, SALT = "floor-key", "floor-salt"


def _form(event: dict[str, Any], *, salt: str = SALT) -> FormData:
    raw = orjson.dumps(event).decode()
    return FormData({"vpbx_api_key": KEY, "sign": sign(KEY, raw, salt), "json": raw})


def _leg(call_id: str, state: str = "Appeared") -> dict[str, Any]:
    return {"entry_id": f"e-{call_id}", "call_id": call_id, "call_state": state,
            "location": "ivr", "from": {"number": "74951234567"},
            "to": {"number": "74950000000"}}


async def test_the_floor_routes_each_signed_trigger_to_the_fixed_extension() -> None:
    pbx = PbxState(api_key=KEY, salt=SALT)
    async with serve_pbx(pbx, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = FloorConfig(api_key=KEY, salt=SALT, pbx_url=f"http://127.0.0.1:{port}/vpbx/")
        async with TestClient(TestServer(create_floor_app(config))) as client:
            sent = [
                ("events/call", _form(_leg("c1"))),
                ("events/call", _form(_leg("c1", "Connected"))),  # not a trigger
                ("events/summary", _form({"entry_id": "e-c1"})),
                ("events/call", _form(_leg("c2"), salt="wrong")),  # refused
                ("events/call", _form(_leg("c3"))),
            ]
            statuses = []
            for path, form in sent:
                async with client.post(f"/mango/{path}", data=form) as resp:
                    statuses.append(resp.status)
            routes = await pbx.wait_routes(2, within=5)
            await asyncio.sleep(0.05)  # nothing else on its way
    assert statuses == [200, 200, 200, 403, 200]
    assert sorted((r.payload["call_id"], r.payload["to_number"]) for r in pbx.routes()) == [
        ("c1", FIXED_EXTENSION), ("c3", FIXED_EXTENSION)]
    assert len(routes) == 2
    assert pbx.bad_signatures == 0

"""The Megaplan emulator speaks documented v3 and routes like PROTOCOLS §4."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from yarl import URL

from emulators.megaplan import (
    MegaplanState,
    export_jsonl,
    generate,
    load_jsonl,
    run_megaplan_emulator,
    serve_megaplan,
)
from emulators.megaplan_store import CT_EMPLOYEE, CT_HUMAN, EmployeeRow


class Api:
    """Raw HTTP against the emulator, so its formats are checked, not a client's."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.token = ""

    async def login(self, **form: str) -> tuple[int, Any]:
        data = {"username": "demo", "password": "demo", "grant_type": "password", **form}
        async with self.session.post(f"{self.base}/api/v3/auth/access_token", data=data) as r:
            body = orjson.loads(await r.read())
        if r.status == 200:
            self.token = body["access_token"]
        return r.status, body

    async def get(self, path: str, query: dict[str, Any] | None = None) -> tuple[int, Any]:
        q = "?" + quote(orjson.dumps(query).decode(), safe="") if query else ""
        url = URL(f"{self.base}{path}{q}", encoded=True)
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.get(url, headers=headers) as r:
            return r.status, orjson.loads(await r.read())

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.post(
            f"{self.base}{path}", data=orjson.dumps(body), headers=headers
        ) as r:
            return r.status, orjson.loads(await r.read())

    async def route(self, phone: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.get(
            f"{self.base}/api/v3/callRoute", params={"phone": phone}, headers=headers
        ) as r:
            assert r.status == 200
            body: dict[str, Any] = orjson.loads(await r.read())["data"]
            return body


@pytest.fixture
def state() -> MegaplanState:
    return generate(clients=120, seed=11)


@pytest.fixture
async def api(state: MegaplanState) -> AsyncIterator[Api]:
    async with serve_megaplan(state) as url, aiohttp.ClientSession() as session:
        api = Api(session, url)
        status, _ = await api.login()
        assert status == 200
        yield api


async def test_token_answer_has_the_documented_fields(api: Api) -> None:
    status, body = await api.login()
    assert status == 200
    assert body["expires_in"] == 172800
    assert body["token_type"] == "bearer"
    assert body["access_token"]
    assert body["refresh_token"]


async def test_bad_credentials_and_missing_or_expired_tokens_get_401_with_errors(
    api: Api, state: MegaplanState
) -> None:
    status, body = await api.login(password="nope")
    assert status == 401
    assert body["meta"]["errors"][0]["message"]
    await api.login()
    state.expire_tokens()
    status, body = await api.get("/api/v3/employee")
    assert status == 401
    assert body["meta"]["status"] == 401
    assert body["meta"]["errors"]
    api.token = ""
    assert (await api.get("/api/v3/employee"))[0] == 401


async def test_lists_use_the_envelope_and_every_object_has_content_type_and_string_id(
    api: Api,
) -> None:
    for path in ("/api/v3/employee", "/api/v3/contractor", "/api/v3/program"):
        status, body = await api.get(path)
        assert status == 200
        assert body["meta"]["errors"] == []
        assert body["meta"]["pagination"]["limit"] == 100
        for obj in body["data"]:
            assert isinstance(obj["contentType"], str)
            assert isinstance(obj["id"], str)
            assert obj["id"].isdigit()


async def test_limit_over_100_is_refused_with_422_naming_the_field(api: Api) -> None:
    status, body = await api.get("/api/v3/contractor", {"limit": 101})
    assert status == 422
    assert body["meta"]["errors"][0]["field"] == "limit"


async def test_page_after_continues_after_the_given_object(api: Api, state: MegaplanState) -> None:
    _, first = await api.get("/api/v3/contractor", {"limit": 50})
    last = first["data"][-1]
    _, second = await api.get(
        "/api/v3/contractor",
        {"limit": 100, "pageAfter": {"contentType": last["contentType"], "id": last["id"]}},
    )
    ids = [o["id"] for o in first["data"] + second["data"]]
    assert ids == sorted(state.clients, key=int)
    assert first["meta"]["pagination"]["hasMoreNext"] is True
    assert second["meta"]["pagination"]["hasMoreNext"] is False


async def test_sort_by_time_updated_desc_puts_the_latest_change_first(
    api: Api, state: MegaplanState
) -> None:
    state.bump("2000050")
    sort = [{"contentType": "SortField", "fieldName": "timeUpdated", "desc": True}]
    _, body = await api.get("/api/v3/contractor", {"limit": 3, "sortBy": sort})
    assert body["data"][0]["id"] == "2000050"


async def test_fields_limit_what_each_object_carries(api: Api) -> None:
    _, body = await api.get(
        "/api/v3/contractor", {"fields": ["isDropped"], "onlyRequestedFields": True}
    )
    assert set(body["data"][0]) == {"contentType", "id", "isDropped"}


async def test_q_matches_phone_digits_in_any_written_form(api: Api, state: MegaplanState) -> None:
    row = state.add_client(name="Q Test", phones=["+7 (999) 765-43-21"])
    for q in ("79997654321", "8 999 765 43 21", "9997654321"):
        _, body = await api.get("/api/v3/contractor", {"q": q})
        assert [o["id"] for o in body["data"]] == [row.id]


async def test_call_route_picks_the_smallest_client_id_and_its_first_active_employee(
    api: Api, state: MegaplanState
) -> None:
    state.put_employee(EmployeeRow(id="1000900", first_name="No", last_name="Ext"))
    state.put_employee(
        EmployeeRow(
            id="1000901", first_name="Blocked", last_name="B", extension="901", can_login=False
        )
    )
    state.put_employee(EmployeeRow(id="1000902", first_name="Good", last_name="G", extension="902"))
    later = state.add_client(
        name="Later", phones=["79001112233"], responsibles=[(CT_EMPLOYEE, "1000902")]
    )
    first = state.add_client(
        name="First",
        phones=["8 (900) 111-22-33"],
        client_id="1999999",
        responsibles=[(CT_HUMAN, later.id), (CT_EMPLOYEE, "1000901"), (CT_EMPLOYEE, "1000902")],
    )
    answer = await api.route("+7 900 111 22 33")
    assert answer == {
        "contentType": "CallRoute",
        "phone": "79001112233",
        "client": {"contentType": "ContractorHuman", "id": first.id},
        "employee": {"contentType": "Employee", "id": "1000902"},
        "extension": "902",
        "reason": None,
    }
    state.set_responsibles(first.id, [(CT_HUMAN, later.id), (CT_EMPLOYEE, "1000901")])
    assert (await api.route("79001112233"))["reason"] == "no_active_responsible"
    state.set_responsibles(first.id, [(CT_EMPLOYEE, "1000900")])
    answer = await api.route("79001112233")
    assert (answer["reason"], answer["extension"]) == ("no_extension", None)
    assert answer["employee"] == {"contentType": "Employee", "id": "1000900"}
    assert (await api.route("79001234500"))["reason"] == "no_client"
    state.drop_client(first.id)
    assert (await api.route("79001112233"))["client"]["id"] == later.id


async def test_writes_are_recorded_and_call_info_is_idempotent_by_provider_id(
    api: Api, state: MegaplanState
) -> None:
    call = {
        "contentType": "CallInfo",
        "providerId": "e-1",
        "type": "in",
        "fromPhone": "79161234567",
        "toPhone": "74951112233",
    }
    for _ in range(2):
        status, body = await api.post("/api/v3/callInfo/history", [call])
        assert status == 200
        assert body["data"][0]["providerId"] == "e-1"
    assert list(state.call_infos) == ["e-1"]
    status, deal = await api.post(
        "/api/v3/deal",
        {
            "contentType": "Deal",
            "program": {"contentType": "Program", "id": "2"},
            "contractor": {"contentType": "ContractorHuman", "id": "2000001"},
            "manager": {"contentType": "Employee", "id": "1000001"},
            "name": "D",
        },
    )
    assert status == 200
    assert deal["data"]["state"]["id"] == "5"  # the program's entry state
    assert [w.path for w in state.writes] == [
        "/api/v3/callInfo/history",
        "/api/v3/callInfo/history",
        "/api/v3/deal",
    ]
    _, deals = await api.get("/api/v3/contractor/2000001/deals")
    assert [d["id"] for d in deals["data"]] == [deal["data"]["id"]]


async def test_extra_fields_include_the_mango_line_field(api: Api) -> None:
    _, body = await api.get("/api/v3/contractorHuman/extraFields")
    assert "Номер линии MANGO OFFICE" in {f["hrName"] for f in body["data"]}


async def test_injected_5xx_and_429_answer_in_the_envelope(api: Api, state: MegaplanState) -> None:
    state.faults.error_count = 1
    status, body = await api.get("/api/v3/program")
    assert (status, body["meta"]["status"]) == (503, 503)
    state.faults.throttle_count = 1
    state.faults.retry_after_s = 2
    headers = {"Authorization": f"Bearer {api.token}"}
    async with api.session.get(f"{api.base}/api/v3/program", headers=headers) as r:
        assert (r.status, r.headers["Retry-After"]) == (429, "2")
    assert (await api.get("/api/v3/program"))[0] == 200


async def test_a_dropped_connection_gets_no_answer(api: Api, state: MegaplanState) -> None:
    state.faults.drop_count = 1
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post("/api/v3/callInfo/history", [])
    assert state.faults.drop_count == 0


def test_generation_is_deterministic_and_shaped_as_promised() -> None:
    a, b = generate(clients=4000, seed=5), generate(clients=4000, seed=5)
    assert [(r.id, r.phones, r.responsibles) for r in a.clients.values()] == [
        (r.id, r.phones, r.responsibles) for r in b.clients.values()
    ]
    assert min(a.clients, key=int) == "2000001"
    assert len(a.employees) == 10
    assert a.employees["1000001"].extension == "101"
    assert a.employees["1000001"].email == "emp1@example.com"
    assert any(not e.active for e in a.employees.values())
    dropped = sum(r.is_dropped for r in a.clients.values())
    assert 10 <= dropped <= 80
    assert any(r.responsibles[0][0] == CT_HUMAN for r in a.clients.values())
    assert all(1 <= len(r.phones) <= 2 for r in a.clients.values())
    assert generate(clients=4000, seed=6).clients["2000001"].phones != a.clients["2000001"].phones


def test_export_then_load_keeps_what_routing_needs(tmp_path: Path) -> None:
    original = generate(clients=300, seed=2)
    path = tmp_path / "crm.jsonl"
    lines = export_jsonl(original, path)
    live = [r for r in original.clients.values() if not r.is_dropped]
    assert lines == len(original.employees) + len(live)
    first = orjson.loads(path.read_bytes().splitlines()[0])
    assert set(first) == {"type", "id", "name", "extension", "email", "active"}
    loaded = load_jsonl(path)
    assert {k: e.active for k, e in loaded.employees.items()} == {
        k: e.active for k, e in original.employees.items()
    }
    assert {k: e.extension for k, e in loaded.employees.items()} == {
        k: e.extension for k, e in original.employees.items()
    }
    for row in live:
        twin = loaded.clients[row.id]
        assert (twin.phones, twin.responsibles, twin.kind) == (
            row.phones,
            row.responsibles,
            row.kind,
        )


async def test_run_megaplan_emulator_serves_a_data_file_until_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "crm.jsonl"
    exported = export_jsonl(generate(clients=50, seed=4), path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(
        run_megaplan_emulator("127.0.0.1", port, clients=5, seed=1, latency_ms=0, data_file=path)
    )
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, f"http://127.0.0.1:{port}")
            for _ in range(100):
                try:
                    await api.login()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
            _, body = await api.get("/api/v3/contractor")
            _, staff = await api.get("/api/v3/employee")
            # the file's people (dropped clients are not exported), not 5 generated
            assert len(body["data"]) + len(staff["data"]) == exported
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_hundred_thousand_clients_generate_fast_and_page_fast() -> None:
    started = time.perf_counter()
    state = generate(clients=100_000, seed=1)
    assert time.perf_counter() - started < 20.0  # not quadratic (1.8 s on a 2.1 GHz Xeon)
    assert len(state.clients) == 100_000
    assert len(state.employees) == 50
    started = time.perf_counter()
    keys = state.client_ids_by_id()
    ordered, pos = state.client_ids_by_updated()
    assert len(keys) == len(ordered) == len(pos) == 100_000
    assert time.perf_counter() - started < 10.0


HUMAN = {"contentType": "ContractorHuman", "firstName": "Новый", "contactInfo": []}


async def test_write_errors_answer_500_to_writes_only_and_apply_nothing(
    api: Api, state: MegaplanState
) -> None:
    state.faults.write_error_count = 1
    assert (await api.get("/api/v3/program"))[0] == 200
    assert (await api.login())[0] == 200  # the token request is not a write
    assert state.faults.write_error_count == 1
    status, body = await api.post("/api/v3/contractorHuman", HUMAN)
    assert (status, body["meta"]["status"]) == (500, 500)
    assert state.applied["client_created"] == 0
    assert state.writes == []  # refused before the handler saw it
    assert (await api.post("/api/v3/contractorHuman", HUMAN))[0] == 200
    assert state.applied["client_created"] == 1


async def test_write_error_rate_hits_writes_and_spares_reads(
    api: Api, state: MegaplanState
) -> None:
    state.faults.write_error_rate = 1.0
    assert (await api.get("/api/v3/employee"))[0] == 200
    assert (await api.post("/api/v3/deal", {}))[0] == 500
    state.faults.write_error_rate = 0.0
    assert (await api.post("/api/v3/contractorHuman", HUMAN))[0] == 200


async def test_a_lost_answer_applies_the_write_then_closes_the_connection(
    api: Api, state: MegaplanState
) -> None:
    state.faults.lost_answer_count = 1
    assert (await api.get("/api/v3/program"))[0] == 200  # reads keep their answers
    assert (await api.post("/api/v3/contractorHuman", {}))[0] == 422  # refused: answered
    assert state.faults.lost_answer_count == 1
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post("/api/v3/contractorHuman", HUMAN)
    assert state.faults.lost_answer_count == 0
    assert state.applied["client_created"] == 1
    [made] = state.created_client_ids
    assert state.clients[made].name == "Новый"


async def test_lost_answer_rate_loses_every_applied_write(api: Api, state: MegaplanState) -> None:
    state.faults.lost_answer_rate = 1.0
    for _ in range(2):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.post("/api/v3/contractorHuman", HUMAN)
    assert len(state.created_client_ids) == 2


async def test_down_for_answers_503_to_everything_until_it_is_over(
    api: Api, state: MegaplanState
) -> None:
    state.faults.down_for(0.3)
    headers = {"Authorization": f"Bearer {api.token}"}
    async with api.session.get(f"{api.base}/api/v3/program", headers=headers) as r:
        assert r.status == 503
    async with api.session.post(
        f"{api.base}/api/v3/contractorHuman", data=orjson.dumps(HUMAN), headers=headers
    ) as r:
        assert r.status == 503
    data = {"username": "demo", "password": "demo", "grant_type": "password"}
    async with api.session.post(f"{api.base}/api/v3/auth/access_token", data=data) as r:
        assert r.status == 503
    assert state.applied["client_created"] == 0
    await asyncio.sleep(0.3)
    assert not state.faults.is_down()
    assert (await api.get("/api/v3/program"))[0] == 200


async def test_throttle_rate_answers_429_with_retry_after(api: Api, state: MegaplanState) -> None:
    state.faults.throttle_rate = 1.0
    state.faults.retry_after_s = 0.5
    headers = {"Authorization": f"Bearer {api.token}"}
    async with api.session.get(f"{api.base}/api/v3/program", headers=headers) as r:
        assert (r.status, r.headers["Retry-After"]) == (429, "0.5")
    state.faults.throttle_rate = 0.0
    assert (await api.get("/api/v3/program"))[0] == 200


async def test_rate_cap_answers_429_past_n_requests_in_a_rolling_second(
    api: Api, state: MegaplanState
) -> None:
    state.faults.rate_cap_per_s = 3
    assert [(await api.get("/api/v3/program"))[0] for _ in range(3)] == [200, 200, 200]
    headers = {"Authorization": f"Bearer {api.token}"}
    async with api.session.get(f"{api.base}/api/v3/program", headers=headers) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
    await asyncio.sleep(1.0)
    assert (await api.get("/api/v3/program"))[0] == 200


async def test_a_stalled_write_is_applied_after_the_client_gave_up(
    api: Api, state: MegaplanState
) -> None:
    state.faults.stall_count = 1
    state.faults.stall_s = 0.3
    headers = {"Authorization": f"Bearer {api.token}"}
    with pytest.raises(TimeoutError):
        async with api.session.post(
            f"{api.base}/api/v3/contractorHuman",
            data=orjson.dumps(HUMAN),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=0.1),
        ):
            pass
    for _ in range(50):
        if state.created_client_ids:
            break
        await asyncio.sleep(0.02)
    assert len(state.created_client_ids) == 1
    assert (await api.get("/api/v3/program"))[0] == 200  # the next one is not stalled


async def test_a_repeated_call_updates_the_stored_one_and_counts_the_posts(
    api: Api, state: MegaplanState
) -> None:
    call = {"contentType": "CallInfo", "providerId": "e-2", "type": "miss", "recordLinks": []}
    assert (await api.post("/api/v3/callInfo/history", [call]))[0] == 200
    later = {**call, "recordLinks": ["https://rec.example/e-2.mp3"]}
    status, body = await api.post("/api/v3/callInfo/history", later)
    assert status == 200
    assert body["data"][0]["recordLinks"] == ["https://rec.example/e-2.mp3"]
    assert list(state.call_infos) == ["e-2"]
    assert state.call_infos["e-2"]["recordLinks"] == ["https://rec.example/e-2.mp3"]
    assert state.call_posts["e-2"] == 2
    assert (state.applied["call_recorded"], state.applied["call_updated"]) == (1, 1)


async def test_applied_counts_what_each_kind_of_write_did(api: Api, state: MegaplanState) -> None:
    _, made = await api.post("/api/v3/contractorHuman", HUMAN)
    oid = made["data"]["id"]
    await api.post(f"/api/v3/contractorHuman/{oid}", {"lastName": "Клиент"})
    await api.post(
        "/api/v3/deal",
        {
            "program": {"contentType": "Program", "id": "1"},
            "contractor": {"contentType": "ContractorHuman", "id": oid},
            "manager": {"contentType": "Employee", "id": "1000001"},
        },
    )
    await api.post(f"/api/v3/contractor/{oid}/comments", {"content": "Звонок"})
    await api.post("/api/v3/contractorHuman", {})  # refused: arrives, applies nothing
    assert dict(state.applied) == {
        "client_created": 1,
        "client_updated": 1,
        "deal_created": 1,
        "comment_added": 1,
    }
    assert state.created_client_ids == [oid]
    assert len(state.writes) == 5

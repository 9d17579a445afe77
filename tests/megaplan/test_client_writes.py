"""Writes reach the CRM as v3 objects, and the emulator records each one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from emulators.megaplan import LINE_FIELD_NAME, MegaplanState
from megaplan.client import MegaplanClient
from megaplan.errors import MegaplanError
from megaplan.mapping import CallInfo


async def test_create_then_update_a_client(client: MegaplanClient, mp_state: MegaplanState) -> None:
    created = await client.create_client(
        name="Новый (16:30 05.03.2018, входящий вызов)",
        phones=["+7 916 123-45-67"],
        responsible_ids=["1000001"],
        extra={LINE_FIELD_NAME: "74951112233"},
    )
    row = mp_state.clients[created.id]
    assert row.name == "Новый (16:30 05.03.2018, входящий вызов)"
    assert row.phones == ["+7 916 123-45-67"]
    assert row.responsibles == [("Employee", "1000001")]
    assert created.extra == {LINE_FIELD_NAME: "74951112233"}
    updated = await client.update_client(created.id, responsible_ids=["1000002"])
    assert [r.id for r in updated.responsibles] == ["1000002"]
    assert updated.phones == ("+7 916 123-45-67",)  # untouched by a partial update
    assert [w.path for w in mp_state.writes] == [
        "/api/v3/contractorHuman",
        f"/api/v3/contractorHuman/{created.id}",
    ]


async def test_create_deal_is_recorded_and_listed_open_on_the_client(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    deal = await client.create_deal(
        program_id="1", state_id="1", contractor_id="2000001", manager_id="1000001", name="Звонок"
    )
    assert deal.is_open is True
    assert mp_state.writes[-1].body["manager"] == {"contentType": "Employee", "id": "1000001"}
    deals = await client.client_deals("2000001")
    assert [d.id for d in deals] == [deal.id]
    assert await client.client_deals("2000002") == []


async def test_a_deal_for_an_unknown_manager_is_refused_naming_the_field(
    client: MegaplanClient,
) -> None:
    with pytest.raises(MegaplanError) as info:
        await client.create_deal(
            program_id="1", state_id="1", contractor_id="2000001", manager_id="999", name="x"
        )
    assert info.value.status == 422
    assert info.value.errors[0]["field"] == "manager"


async def test_record_calls_is_idempotent_by_provider_id(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    call = CallInfo(
        provider_id="entry-1",
        type="miss",
        from_phone="79161234567",
        to_phone="74951112233",
        time_from=datetime(2024, 3, 1, 12, tzinfo=UTC),
        time_to=datetime(2024, 3, 1, 12, 1, tzinfo=UTC),
    )
    await client.record_calls([call])
    await client.record_calls([call])
    assert list(mp_state.call_infos) == ["entry-1"]
    assert len(mp_state.writes) == 2


async def test_add_comment_lands_on_the_client(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    comment_id = await client.add_comment("2000001", "Пропущенный звонок")
    assert comment_id is not None
    assert mp_state.comments[-1]["content"] == "Пропущенный звонок"
    assert mp_state.comments[-1]["subject"]["id"] == "2000001"


async def test_programs_entry_points_and_extra_fields(client: MegaplanClient) -> None:
    assert [s.id for s in await client.program_entry_points("1")] == ["1"]
    names = {f.hr_name: f.name for f in await client.extra_fields()}
    assert names["Номер линии MANGO OFFICE"] == LINE_FIELD_NAME


async def test_call_route_answers_like_the_routing_rules(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    row = mp_state.add_client(
        name="X Y",
        phones=["+7 (926) 000-11-22"],
        responsibles=[
            ("ContractorHuman", "2000001"),
            ("Employee", "1000003"),
            ("Employee", "1000002"),
        ],
    )
    route = await client.call_route("89260001122")
    assert (route.client_id, route.employee_id, route.extension, route.reason) == (
        row.id,
        "1000002",
        "102",
        None,
    )

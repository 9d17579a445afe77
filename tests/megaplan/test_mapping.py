"""Megaplan v3 JSON ⇄ records: what routing relies on, and malformed input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from megaplan import mapping as mp
from megaplan.errors import MappingError


def _human(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"contentType": "ContractorHuman", "id": "2000001"}
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("flags", "active"),
    [
        ({"isWorking": True, "fireDay": None, "canLogin": True}, True),
        ({}, True),  # missing flags take their harmless defaults
        ({"isWorking": False}, False),
        ({"fireDay": {"contentType": "DateOnly", "value": "2024-06-01"}}, False),
        ({"canLogin": False}, False),
    ],
)
def test_employee_is_active_only_when_working_not_fired_and_able_to_log_in(
    flags: dict[str, Any], active: bool
) -> None:
    emp = mp.parse_employee({"contentType": "Employee", "id": "1000001", "name": "A", **flags})
    assert emp.active is active


def test_employee_email_comes_from_contact_info_before_a_top_level_email() -> None:
    contacts = [
        {"contentType": "ContactInfo", "type": "phone", "value": "+7 916 000-00-01"},
        {"contentType": "ContactInfo", "type": "email", "value": "anna@example.com"},
    ]
    emp = mp.parse_employee(
        {
            "id": 1000001,
            "firstName": "Anna",
            "lastName": "Petrova",
            "contactInfo": contacts,
            "email": "other@example.com",
        }
    )
    assert (emp.id, emp.name, emp.email, emp.phones) == (
        "1000001",
        "Anna Petrova",
        "anna@example.com",
        ("+7 916 000-00-01",),
    )
    assert mp.parse_employee({"id": "1", "email": "top@example.com"}).email == "top@example.com"
    assert mp.parse_employee({"id": "1"}).email is None


def test_every_responsible_content_type_maps_to_its_kind_in_crm_order() -> None:
    refs = [
        {"contentType": "ContractorHuman", "id": "2000005"},
        {"contentType": "Employee", "id": "1000001"},
        {"contentType": "ContractorCompany", "id": "2000006"},
        {"contentType": "Group", "id": "7"},
        {"contentType": "Department", "id": "8"},
    ]
    client = mp.parse_client(_human(responsibles=refs))
    assert client.responsibles == (
        mp.Responsible(kind="client", id="2000005"),
        mp.Responsible(kind="employee", id="1000001"),
        mp.Responsible(kind="client", id="2000006"),
        mp.Responsible(kind="group", id="7"),
        mp.Responsible(kind="group", id="8"),
    )


@pytest.mark.parametrize(("raw", "dropped"), [(True, True), (False, False), (None, False)])
def test_is_dropped_maps_to_dropped(raw: bool | None, dropped: bool) -> None:
    assert mp.parse_client(_human(isDropped=raw)).dropped is dropped


def test_client_phones_are_raw_values_with_the_main_one_first() -> None:
    contacts = [
        {"type": "phone", "value": "8 916 111 22 33", "isMain": False},
        {"type": "email", "value": "x@example.com", "isMain": True},
        {"type": "phone", "value": "+7 (916) 123-45-67", "isMain": True},
    ]
    client = mp.parse_client(_human(firstName="Ivan", lastName="Ivanov", contactInfo=contacts))
    assert client.phones == ("+7 (916) 123-45-67", "8 916 111 22 33")
    assert client.name == "Ivan Ivanov"
    assert client.kind == "human"


def test_a_nul_in_a_clients_text_is_dropped_so_the_copy_can_store_it() -> None:
    # PostgreSQL's text refuses NUL: one such CRM record stopped the sync for good
    contacts = [{"type": "phone", "value": "+7 916 123-45-67\x00", "isMain": True},
                {"type": "phone", "value": "\x00", "isMain": False}]
    client = mp.parse_client(_human(firstName="Iv\x00an", lastName="Ivanov",
                                    contactInfo=contacts))
    assert client.name == "Ivan Ivanov"
    assert client.phones == ("+7 916 123-45-67",)


def test_company_takes_its_name_and_kind() -> None:
    client = mp.parse_client({"contentType": "ContractorCompany", "id": "5", "name": "OOO Vector"})
    assert (client.kind, client.name) == ("company", "OOO Vector")


@pytest.mark.parametrize(
    "raw",
    [
        "2024-03-01T12:00:00+03:00",
        {"contentType": "DateTime", "value": "2024-03-01T12:00:00+03:00"},
        "2024-03-01T09:00:00Z",
    ],
)
def test_time_updated_accepts_plain_and_wrapped_iso_dates(raw: Any) -> None:
    client = mp.parse_client(_human(timeUpdated=raw))
    assert client.time_updated == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def test_a_date_without_offset_is_taken_as_utc() -> None:
    assert mp.parse_datetime("2024-03-01T09:00:00") == datetime(2024, 3, 1, 9, tzinfo=UTC)
    assert mp.parse_datetime(None) is None


def test_custom_fields_are_kept_by_name_as_strings() -> None:
    client = mp.parse_client(
        _human(Category1000047CustomFieldNomerLiniiMangoOffice="74951112233", other=5, plain=7),
        extra_fields=["plain"],
    )
    assert client.extra == {
        "Category1000047CustomFieldNomerLiniiMangoOffice": "74951112233",
        "plain": "7",
    }


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (_human(id="2000042", responsibles=[{"contentType": "Employee"}]), "no id"),
        (_human(id="2000042", responsibles="1000001"), "not a list"),
        (_human(id="2000042", responsibles=[{"contentType": "Robot", "id": "1"}]), "Robot"),
        (_human(id="2000042", timeUpdated="yesterday"), "timeUpdated"),
        (_human(id="2000042", contactInfo={"type": "phone"}), "contactInfo"),
        (_human(id="2000042", isDropped="yes"), "isDropped"),
        ({"contentType": "Task", "id": "2000042"}, "unknown contractor type"),
    ],
)
def test_a_malformed_client_raises_mapping_error_naming_its_id(
    obj: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MappingError) as info:
        mp.parse_client(obj)
    assert info.value.object_id == "2000042"
    assert "2000042" in str(info.value)
    assert reason in info.value.reason


def test_an_object_without_id_raises_mapping_error() -> None:
    with pytest.raises(MappingError, match="no id"):
        mp.parse_client({"contentType": "ContractorHuman", "name": "X"})
    with pytest.raises(MappingError, match="not an object"):
        mp.parse_employee(["1"])


def test_program_states_carry_type_and_entry_flag() -> None:
    program = mp.parse_program(
        {
            "contentType": "Program",
            "id": "1",
            "name": "Sales",
            "states": [
                {"id": "1", "name": "New", "type": "active", "isEntry": True},
                {"id": "3", "name": "Won", "type": "positive"},
            ],
        }
    )
    assert [(s.id, s.is_entry, s.is_open) for s in program.states] == [
        ("1", True, True),
        ("3", False, False),
    ]


def test_a_deal_is_open_while_its_embedded_state_is_active() -> None:
    deal = mp.parse_deal(
        {"id": "9", "name": "D", "program": {"id": "1"}, "state": {"id": "2", "type": "active"}}
    )
    assert (deal.program_id, deal.state_id, deal.is_open) == ("1", "2", True)
    assert mp.parse_deal({"id": "9", "state": {"id": "2"}}).is_open is None


def test_a_deal_carries_what_finds_the_one_an_uncertain_create_made() -> None:
    deal = mp.parse_deal(
        {
            "contentType": "Deal",
            "id": 12,
            "name": "Звонок 79161234567",
            "state": {"contentType": "ProgramState", "id": "4", "type": "negative"},
            "contractor": {"contentType": "ContractorHuman", "id": "2000001"},
            "manager": {"contentType": "Employee", "id": "1000001"},
            "timeCreated": {"contentType": "DateTime", "value": "2024-03-01T12:00:00+00:00"},
        }
    )
    assert (deal.id, deal.name, deal.state_type, deal.is_open) == (
        "12", "Звонок 79161234567", "negative", False
    )
    assert (deal.contractor_id, deal.manager_id) == ("2000001", "1000001")
    assert deal.time_created == datetime(2024, 3, 1, 12, tzinfo=UTC)


def test_contractor_update_payload_sends_only_what_is_given() -> None:
    assert mp.contractor_human_payload(responsible_ids=["1000002"]) == {
        "contentType": "ContractorHuman",
        "responsibles": [{"contentType": "Employee", "id": "1000002"}],
    }


def test_contractor_create_payload_marks_the_first_phone_main_and_keeps_extra_fields() -> None:
    body = mp.contractor_human_payload(
        first_name="Новый",
        phones=["+7 916 123-45-67", "+7 916 765-43-21"],
        responsible_ids=["1000001"],
        extra={"Category1CustomFieldLine": "74951112233"},
    )
    assert body["firstName"] == "Новый"
    assert [(c["value"], c["isMain"], c["type"]) for c in body["contactInfo"]] == [
        ("+7 916 123-45-67", True, "phone"),
        ("+7 916 765-43-21", False, "phone"),
    ]
    assert body["Category1CustomFieldLine"] == "74951112233"


def test_deal_payload_refers_to_program_state_contractor_and_manager() -> None:
    body = mp.deal_payload(
        program_id="1",
        state_id="2",
        contractor_id="2000001",
        manager_id="1000001",
        name="N",
        contractor_kind="company",
    )
    assert body == {
        "contentType": "Deal",
        "program": {"contentType": "Program", "id": "1"},
        "state": {"contentType": "ProgramState", "id": "2"},
        "contractor": {"contentType": "ContractorCompany", "id": "2000001"},
        "manager": {"contentType": "Employee", "id": "1000001"},
        "name": "N",
    }


def test_call_info_payload_carries_provider_id_and_wrapped_times() -> None:
    start = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=3)))
    body = mp.call_info_payload(
        mp.CallInfo(
            provider_id="MjA4NzQ4OTA5Mg==",
            type="in",
            from_phone="79161234567",
            to_phone="74951112233",
            time_from=start,
            time_to=start + timedelta(minutes=2),
            to_user="1000001",
            record_links=("https://rec/1",),
        )
    )
    assert body["contentType"] == "CallInfo"
    assert body["providerId"] == "MjA4NzQ4OTA5Mg=="
    assert body["toUser"] == {"contentType": "Employee", "id": "1000001"}
    assert body["fromUser"] is None
    assert body["timeFrom"] == {"contentType": "DateTime", "value": start.isoformat()}
    assert mp.parse_datetime(body["timeTo"]) == start + timedelta(minutes=2)
    assert body["recordLinks"] == ["https://rec/1"]


def test_comment_payload_is_a_comment_with_content() -> None:
    assert mp.comment_payload("hi") == {"contentType": "Comment", "content": "hi"}

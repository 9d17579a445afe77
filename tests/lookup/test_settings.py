"""Integration settings (PROTOCOLS §5): defaults, partial updates, validation naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from lookup.settings import (
    DealTarget,
    LastContactTarget,
    Settings,
    SettingsError,
    merge_update,
)

# PROTOCOLS §5, verbatim
DEFAULTS: dict[str, Any] = {
    "route_to_responsible": True,
    "accepted_incoming": "nothing",
    "accepted_deal": {"program_id": None, "state_id": None},
    "missed_incoming": "nothing",
    "missed_deal": {"program_id": None, "state_id": None},
    "repeat_calls": "record_only",
    "source_line": False,
    "update_responsible_on_transfer": False,
    "missed_in_ivr": {"enabled": False, "employee_id": None},
    "missed_in_group": {"enabled": False, "employee_id": None},
    "outgoing_create_client": False,
    "phone_format": "international",
    "default_region": "RU",
    "timezone": "Europe/Moscow",
    "dry_run": False,
    "skip_busy_responsible": False,
    "route_unknown_to_last_contact": {"enabled": False, "within_hours": 72},
    "route_lines": [],
}

DEAL = {"program_id": "10", "state_id": "20"}


def _field_of(update: dict[str, Any], current: Settings | None = None, **kw: Any) -> str:
    with pytest.raises(SettingsError) as info:
        merge_update(current or Settings(), update, **kw)
    assert info.value.field in str(info.value)
    return info.value.field


def test_defaults_equal_the_protocol_json_exactly() -> None:
    assert Settings().to_json() == DEFAULTS
    assert list(Settings().to_json()) == list(DEFAULTS)


def test_partial_update_keeps_the_other_keys() -> None:
    merged = merge_update(Settings(), {"dry_run": True, "phone_format": "digits"})
    expected = dict(DEFAULTS, dry_run=True, phone_format="digits")
    assert merged.to_json() == expected
    again = merge_update(merged, {"source_line": True})
    assert again.to_json() == dict(expected, source_line=True)


def test_nested_object_is_replaced_whole() -> None:
    current = merge_update(
        Settings(), {"missed_in_ivr": {"enabled": True, "employee_id": "7"}}
    )
    merged = merge_update(current, {"missed_in_ivr": {"enabled": False}})
    assert merged.to_json()["missed_in_ivr"] == {"enabled": False, "employee_id": None}
    deal = merge_update(Settings(), {"accepted_deal": DEAL})
    replaced = merge_update(deal, {"accepted_deal": {"program_id": "11"}})
    assert replaced.accepted_deal == DealTarget(program_id="11", state_id=None)


def test_update_does_not_change_the_current_settings() -> None:
    current = Settings()
    merge_update(current, {"dry_run": True})
    assert current.to_json() == DEFAULTS


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"route_to_responsible": "yes"}, "route_to_responsible"),
        ({"dry_run": 1}, "dry_run"),
        ({"source_line": None}, "source_line"),
        ({"accepted_deal": "10/20"}, "accepted_deal"),
        ({"accepted_deal": {"program_id": 10, "state_id": "20"}}, "accepted_deal.program_id"),
        ({"missed_deal": {"program_id": "1", "state_id": ""}}, "missed_deal.state_id"),
        ({"missed_in_group": {"enabled": "true"}}, "missed_in_group.enabled"),
        ({"missed_in_ivr": {"enabled": False, "employee_id": 5}}, "missed_in_ivr.employee_id"),
        ({"timezone": 3}, "timezone"),
        ({"default_region": 7}, "default_region"),
        ({"route_unknown_to_last_contact": True}, "route_unknown_to_last_contact"),
        ({"route_unknown_to_last_contact": {"enabled": 1}},
         "route_unknown_to_last_contact.enabled"),
        ({"route_unknown_to_last_contact": {"within_hours": "72"}},
         "route_unknown_to_last_contact.within_hours"),
        ({"route_unknown_to_last_contact": {"within_hours": 24.0}},
         "route_unknown_to_last_contact.within_hours"),
        ({"route_unknown_to_last_contact": {"within_hours": True}},
         "route_unknown_to_last_contact.within_hours"),
        ({"route_lines": "74951112233"}, "route_lines"),
        ({"route_lines": [74951112233]}, "route_lines"),
        ({"route_lines": [""]}, "route_lines"),
        ({"route_lines": None}, "route_lines"),
        # NUL (PostgreSQL's jsonb refuses it) and other control characters, even where
        # the value is not used (a deal for a mode that makes none, a disabled target)
        ({"accepted_deal": {"program_id": "1\x00", "state_id": "2"}},
         "accepted_deal.program_id"),
        ({"missed_in_ivr": {"enabled": False, "employee_id": "7\x00"}},
         "missed_in_ivr.employee_id"),
        ({"missed_in_group": {"enabled": False, "employee_id": "7\n"}},
         "missed_in_group.employee_id"),
        ({"route_lines": ["7495\x001112233"]}, "route_lines"),
    ],
)
def test_wrong_type_is_refused_naming_the_field(update: dict[str, Any], field: str) -> None:
    assert _field_of(update) == field


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"no_such_setting": True}, "no_such_setting"),
        ({"dry_run": True, "routeToResponsible": True}, "routeToResponsible"),
        ({"accepted_deal": {"program_id": "1", "state_id": "2", "extra": 1}}, "accepted_deal"),
        ({"missed_in_ivr": {"enabled": False, "who": "1"}}, "missed_in_ivr"),
        ({"route_unknown_to_last_contact": {"enabled": True, "hours": 2}},
         "route_unknown_to_last_contact"),
    ],
)
def test_unknown_key_is_refused_naming_it(update: dict[str, Any], field: str) -> None:
    assert _field_of(update) == field


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"accepted_incoming": "deal"}, "accepted_incoming"),
        ({"missed_incoming": "Client"}, "missed_incoming"),
        ({"repeat_calls": "never"}, "repeat_calls"),
        ({"phone_format": "E164"}, "phone_format"),
    ],
)
def test_bad_choice_is_refused_naming_the_field(update: dict[str, Any], field: str) -> None:
    assert _field_of(update) == field


@pytest.mark.parametrize("region", ["XX", "RUS", "", "Russia"])
def test_bad_region_is_refused(region: str) -> None:
    assert _field_of({"default_region": region}) == "default_region"


def test_region_is_taken_in_any_case() -> None:
    assert merge_update(Settings(), {"default_region": "kz"}).default_region == "KZ"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "Moscow"])
def test_bad_timezone_is_refused(zone: str) -> None:
    assert _field_of({"timezone": zone}) == "timezone"


@pytest.mark.parametrize("zone", ["Europe", "America/Argentina", "a" * 300, "Europe/" + "b" * 5000])
def test_a_timezone_that_is_a_directory_or_too_long_for_a_file_name_is_refused(
    zone: str,
) -> None:
    """The zone database is looked up as files: these fail as OSError, not as "not found"."""
    assert _field_of({"timezone": zone}) == "timezone"
    assert Settings.from_stored({"timezone": zone}).timezone == "Europe/Moscow"


def test_good_timezone_is_taken() -> None:
    assert merge_update(Settings(), {"timezone": "Asia/Almaty"}).timezone == "Asia/Almaty"


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"accepted_incoming": "client_and_deal"}, "accepted_deal"),
        ({"missed_incoming": "client_and_deal"}, "missed_deal"),
        ({"accepted_incoming": "client_and_deal",
          "accepted_deal": {"program_id": "10", "state_id": None}}, "accepted_deal"),
        ({"missed_incoming": "client_and_deal",
          "missed_deal": {"program_id": None, "state_id": "20"}}, "missed_deal"),
    ],
)
def test_client_and_deal_without_program_and_state_is_refused(
    update: dict[str, Any], field: str
) -> None:
    assert _field_of(update) == field


def test_client_and_deal_with_program_and_state_is_taken() -> None:
    merged = merge_update(Settings(), {"accepted_incoming": "client_and_deal",
                                       "accepted_deal": DEAL})
    assert merged.accepted_deal == DealTarget(program_id="10", state_id="20")
    assert merged.missed_deal == DealTarget()


@pytest.mark.parametrize("mode", ["always_deal", "deal_if_none_open"])
def test_repeat_calls_deals_require_both_deal_settings(mode: str) -> None:
    assert _field_of({"repeat_calls": mode}) == "accepted_deal"
    assert _field_of({"repeat_calls": mode, "accepted_deal": DEAL}) == "missed_deal"
    assert _field_of({"repeat_calls": mode, "missed_deal": DEAL}) == "accepted_deal"
    merged = merge_update(Settings(), {"repeat_calls": mode, "accepted_deal": DEAL,
                                       "missed_deal": DEAL})
    assert merged.repeat_calls == mode


def test_repeat_calls_record_only_needs_no_deal() -> None:
    assert merge_update(Settings(), {"repeat_calls": "record_only"}).repeat_calls == "record_only"


def test_missed_in_ivr_enabled_without_employee_is_refused() -> None:
    field = _field_of({"missed_in_ivr": {"enabled": True, "employee_id": None}})
    assert field == "missed_in_ivr.employee_id"
    field = _field_of({"missed_in_group": {"enabled": True}})
    assert field == "missed_in_group.employee_id"


def test_known_employees_callback_refuses_an_unknown_id() -> None:
    known = {"1", "2"}
    update = {"missed_in_ivr": {"enabled": True, "employee_id": "3"}}
    field = _field_of(update, known_employees=known.__contains__)
    assert field == "missed_in_ivr.employee_id"
    good = {"missed_in_ivr": {"enabled": True, "employee_id": "2"}}
    merged = merge_update(Settings(), good, known_employees=known.__contains__)
    assert merged.missed_in_ivr.employee_id == "2"


def test_known_deal_callback_refuses_an_unknown_program_or_state() -> None:
    def known_deal(deal: DealTarget) -> bool:
        return (deal.program_id, deal.state_id) == ("10", "20")

    bad = {"missed_incoming": "client_and_deal",
           "missed_deal": {"program_id": "10", "state_id": "21"}}
    assert _field_of(bad, known_deal=known_deal) == "missed_deal"
    good = {"missed_incoming": "client_and_deal", "missed_deal": DEAL}
    assert merge_update(Settings(), good, known_deal=known_deal).missed_deal.state_id == "20"


def test_refused_update_raises_a_value_error_with_the_field_first() -> None:
    with pytest.raises(ValueError, match=r"^phone_format: "):
        merge_update(Settings(), {"phone_format": "pretty"})


def test_from_stored_fills_missing_keys_with_defaults() -> None:
    stored = Settings.from_stored({"dry_run": True})
    assert stored.to_json() == dict(DEFAULTS, dry_run=True)


def test_from_stored_ignores_unknown_keys() -> None:
    stored = Settings.from_stored({"dry_run": True, "phone_format": "digits",
                                   "a_setting_removed_later": 1})
    assert stored.to_json() == dict(DEFAULTS, dry_run=True, phone_format="digits")


def test_from_stored_keeps_good_keys_when_one_value_is_bad() -> None:
    stored = Settings.from_stored({"dry_run": True, "phone_format": "no-such-format"})
    assert stored.to_json() == dict(DEFAULTS, dry_run=True)


def test_from_stored_does_not_check_references() -> None:
    stored = Settings.from_stored({"accepted_incoming": "client_and_deal"})
    assert stored.accepted_incoming == "client_and_deal"


@pytest.mark.parametrize("hours", [0, -1, 721, 10**9])
def test_last_contact_window_out_of_range_is_refused(hours: int) -> None:
    update = {"route_unknown_to_last_contact": {"enabled": True, "within_hours": hours}}
    assert _field_of(update) == "route_unknown_to_last_contact.within_hours"


@pytest.mark.parametrize("hours", [1, 72, 720])
def test_last_contact_window_within_range_is_taken(hours: int) -> None:
    merged = merge_update(Settings(), {"route_unknown_to_last_contact": {
        "enabled": True, "within_hours": hours}})
    assert merged.route_unknown_to_last_contact == LastContactTarget(enabled=True,
                                                                     within_hours=hours)


def test_last_contact_object_is_replaced_whole() -> None:
    on = merge_update(Settings(), {"route_unknown_to_last_contact": {"enabled": True,
                                                                     "within_hours": 5}})
    merged = merge_update(on, {"route_unknown_to_last_contact": {"enabled": False}})
    assert merged.to_json()["route_unknown_to_last_contact"] == {"enabled": False,
                                                                 "within_hours": 72}


def test_route_lines_in_any_written_form_compare_by_canonical_key() -> None:
    merged = merge_update(Settings(), {"route_lines": ["+7 (495) 111-22-33", "8 495 111-22-44",
                                                       "74951112255"]})
    assert merged.to_json()["route_lines"] == ["+7 (495) 111-22-33", "8 495 111-22-44",
                                               "74951112255"]  # kept as written
    assert merged.route_line_keys == {74951112233, 74951112244, 74951112255}
    assert Settings.from_stored(merged.to_json()).route_line_keys == merged.route_line_keys


@pytest.mark.parametrize("line", ["not a phone", "12", "+7 (495) 111-22-33 ext. abc"])
def test_a_route_line_that_is_not_a_phone_number_is_refused(line: str) -> None:
    assert _field_of({"route_lines": ["74951112233", line]}) == "route_lines"


def test_route_lines_are_read_with_the_region_sent_with_them() -> None:
    merged = merge_update(Settings(), {"default_region": "US", "route_lines": ["(650) 253-0000"]})
    assert merged.route_line_keys == {16502530000}
    in_russia = merge_update(Settings(), {"route_lines": ["(650) 253-0000"]})
    assert in_russia.route_line_keys == {76502530000}


def test_too_many_route_lines_are_refused() -> None:
    lines = [f"7495111{i:04d}" for i in range(101)]
    assert _field_of({"route_lines": lines}) == "route_lines"

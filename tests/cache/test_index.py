"""The routing rules of PROTOCOLS §4, through the in-memory index.

Every rule is checked on an index built in one go (the base) and on one whose
clients arrived later through change refreshes (the overlays), since a running
service answers from both.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from cache.index import AccountIndex
from cache.loader import load_account_index, load_employees, refresh
from lookup.rules import NO_ACTIVE_RESPONSIBLE, NO_CLIENT, NO_EXTENSION, Decision, EmployeeRef
from lookup.sql_lookup import decide_sql
from tests.conftest import load_records

NUMBER = "79161234567"
KEY = 79161234567


def emp(crm_id: str, extension: str | None = "101", active: bool = True) -> dict[str, Any]:
    return {"type": "employee", "id": crm_id, "name": f"E{crm_id}", "extension": extension,
            "active": active}


def client(crm_id: str, *responsibles: tuple[str, str], phones: tuple[str, ...] = (NUMBER,),
           dropped: bool = False) -> dict[str, Any]:
    return {"type": "client", "id": crm_id, "name": f"C{crm_id}", "phones": list(phones),
            "dropped": dropped, "responsibles": [{"type": t, "id": i} for t, i in responsibles]}


def by(crm_id: str) -> tuple[str, str]:
    return ("employee", crm_id)


async def _account_id(db: asyncpg.Connection) -> int:
    account_id: int = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    return account_id


@pytest.fixture(params=["base", "overlay"])
def via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def build(dsn: str, db: asyncpg.Connection, records: list[dict[str, Any]],
                via: str) -> AccountIndex:
    """The index of ``records``: built in one go, or refreshed into an empty index."""
    if via == "base":
        await load_records(dsn, records)
        return await load_account_index(db, await _account_id(db))
    await load_records(dsn, [])
    account_id = await _account_id(db)
    index = await load_account_index(db, account_id)
    assert index.decide(NUMBER) == Decision(NUMBER, NO_CLIENT)
    await load_records(dsn, records)
    keys = [r["phone_key"] for r in await db.fetch("SELECT phone_key FROM client_phones")]
    uids = [r["uid"] for r in await db.fetch("SELECT uid FROM clients")]
    index.set_employees(await load_employees(db, account_id))
    await refresh(db, account_id, index, phone_keys=keys, client_uids=uids)
    assert index.overlay_size > 0
    return index


async def test_caller_of_a_known_client_is_routed_to_its_responsible(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    index = await build(dsn, db, [emp("1", "101"), client("10", by("1"))], via)
    assert index.decide("+7 (916) 123-45-67") == Decision(NUMBER, None, "10", "1", "101")
    assert index.decide("8 916 123-45-67") == Decision(NUMBER, None, "10", "1", "101")


async def test_unknown_number_gives_no_client(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    index = await build(dsn, db, [emp("1"), client("10", by("1"))], via)
    assert index.decide("79160000000") == Decision("79160000000", NO_CLIENT)


async def test_not_a_phone_number_gives_no_decision(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    index = await build(dsn, db, [emp("1"), client("10", by("1"))], via)
    assert index.decide("abc") is None
    assert index.decide("") is None


async def test_smallest_crm_id_wins_among_clients_sharing_a_number(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101"), emp("2", "102"), emp("3", "103"),
               client("10", by("1")), client("9", by("2")), client("100", by("3"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "9", "2", "102")


async def test_crm_ids_compare_as_integers_not_as_text(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101"), emp("2", "102"),
               client("1000000000000", by("1")), client("200", by("2"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "200", "2", "102")


async def test_non_digit_crm_ids_sort_after_digit_ones(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101"), emp("2", "102"), emp("3", "103"),
               client("abc", by("1")), client("0x10", by("3")), client("99999", by("2"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "99999", "2", "102")


async def test_non_digit_crm_ids_alone_are_still_found(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101"), emp("2", "102"), client("x2", by("2")), client("x1", by("1"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "x1", "1", "101")


async def test_digit_crm_ids_beyond_64_bits_still_compare_as_integers(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    """"ids that are digits compare as integers": 99999999999999999999 < 100000000000000000000."""
    records = [emp("1", "101"), emp("2", "102"),
               client("100000000000000000000", by("1")), client("99999999999999999999", by("2"))]
    index = await build(dsn, db, records, via)
    by_sql = await decide_sql(db, await _account_id(db), KEY)
    assert by_sql.client_id == "99999999999999999999"
    assert index.decide(NUMBER) == by_sql


async def test_dropped_client_is_ignored(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101"), emp("2", "102"),
               client("5", by("1"), dropped=True), client("6", by("2"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "6", "2", "102")


async def test_number_of_only_a_dropped_client_gives_no_client(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    index = await build(dsn, db, [emp("1"), client("5", by("1"), dropped=True)], via)
    assert index.decide(NUMBER) == Decision(NUMBER, NO_CLIENT)


async def test_client_set_as_responsible_is_skipped(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101"), client("7", ("client", "1"), by("1"), phones=("79990000000",)),
               client("10", ("client", "7"), by("1"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")


async def test_group_set_as_responsible_is_skipped(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101"), client("10", ("group", "1"), by("1"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")


async def test_blocked_employee_is_skipped_for_the_next_active_one(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101", active=False), emp("2", "102"), client("10", by("1"), by("2"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "10", "2", "102")


async def test_responsible_unknown_among_employees_is_skipped(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("2", "102"), client("10", by("404"), by("2"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, None, "10", "2", "102")


async def test_employee_without_extension_gives_no_extension(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", None), emp("2", "102"), client("10", by("1"), by("2"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, NO_EXTENSION, "10", "1")


async def test_employee_with_empty_extension_gives_no_extension(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", ""), emp("2", "102"), client("10", by("1"), by("2"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, NO_EXTENSION, "10", "1")


async def test_client_without_active_employee_gives_no_active_responsible(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101", active=False), client("10", by("1"), ("client", "3"), by("404")),
               client("11", phones=("79160000011",))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, NO_ACTIVE_RESPONSIBLE, "10")
    assert index.decide("79160000011") == Decision("79160000011", NO_ACTIVE_RESPONSIBLE, "11")


async def test_first_client_without_active_responsible_is_not_passed_over(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101", active=False), emp("2", "102"),
               client("10", by("1")), client("11", by("2"))]
    index = await build(dsn, db, records, via)
    assert index.decide(NUMBER) == Decision(NUMBER, NO_ACTIVE_RESPONSIBLE, "10")


async def test_client_with_several_phones_is_found_by_each(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    records = [emp("1", "101"),
               client("10", by("1"), phones=(NUMBER, "+380 44 123 4567", "8 495 111-22-33"))]
    index = await build(dsn, db, records, via)
    for number in (NUMBER, "380441234567", "74951112233"):
        assert index.decide(number) == Decision(number, None, "10", "1", "101")


async def test_blocking_an_employee_changes_all_their_clients_without_a_rebuild(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    phones = [f"7916000000{i}" for i in range(5)]
    records = [emp("1", "101"), emp("2", "102"),
               *(client(str(10 + i), by("1"), by("2"), phones=(p,)) for i, p in enumerate(phones))]
    index = await build(dsn, db, records, via)
    assert {index.decide(p).extension for p in phones} == {"101"}  # type: ignore[union-attr]
    index.set_employees([EmployeeRef("1", "101", False), EmployeeRef("2", "102", True)])
    for i, p in enumerate(phones):
        assert index.decide(p) == Decision(p, None, str(10 + i), "2", "102")
    index.set_employees([EmployeeRef("1", "101", True), EmployeeRef("2", "102", True)])
    assert {index.decide(p).employee_id for p in phones} == {"1"}  # type: ignore[union-attr]


async def test_changing_an_extension_changes_all_their_clients_without_a_rebuild(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    phones = [f"7916000000{i}" for i in range(5)]
    records = [emp("1", "101"), *(client(str(10 + i), by("1"), phones=(p,))
                                  for i, p in enumerate(phones))]
    index = await build(dsn, db, records, via)
    index.set_employees([EmployeeRef("1", "555", True)])
    for i, p in enumerate(phones):
        assert index.decide(p) == Decision(p, None, str(10 + i), "1", "555")
    index.set_employees([EmployeeRef("1", None, True)])
    for i, p in enumerate(phones):
        assert index.decide(p) == Decision(p, NO_EXTENSION, str(10 + i), "1")


async def test_employee_appearing_later_is_resolved_for_existing_clients(
    dsn: str, db: asyncpg.Connection, via: str
) -> None:
    index = await build(dsn, db, [client("10", by("1"))], via)
    assert index.decide(NUMBER) == Decision(NUMBER, NO_ACTIVE_RESPONSIBLE, "10")
    index.set_employees([EmployeeRef("1", "101", True)])
    assert index.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")


async def test_new_client_with_a_smaller_id_takes_over_a_number_through_a_refresh(
    dsn: str, db: asyncpg.Connection
) -> None:
    await load_records(dsn, [emp("1", "101"), emp("2", "102"), client("10", by("1"))])
    account_id = await _account_id(db)
    index = await load_account_index(db, account_id)
    await load_records(dsn, [client("9", by("2"))])
    await refresh(db, account_id, index, phone_keys=[KEY])
    assert index.decide(NUMBER) == Decision(NUMBER, None, "9", "2", "102")
    await db.execute("UPDATE clients SET dropped = true WHERE crm_id = '9'")
    await refresh(db, account_id, index, phone_keys=[KEY])
    assert index.decide(NUMBER) == Decision(NUMBER, None, "10", "1", "101")


async def test_index_uses_its_default_region_for_caller_numbers(
    dsn: str, db: asyncpg.Connection
) -> None:
    await load_records(dsn, [emp("1", "101"), client("10", by("1"), phones=("+1 650 253 0000",))])
    index = await load_account_index(db, await _account_id(db), region="US")
    assert index.decide("(650) 253-0000") == Decision("16502530000", None, "10", "1", "101")

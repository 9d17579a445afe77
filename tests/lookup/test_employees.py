"""``lookup.employees``: the employees page's list and the hand-set extension."""

from __future__ import annotations

import asyncpg
import pytest

from lookup.accounts import upsert_default_account
from lookup.employees import employee_extensions, set_extension


@pytest.fixture
async def account(db: asyncpg.Connection) -> int:
    account_id: int = await upsert_default_account(
        db, mango_api_key="test-key", mango_api_salt="test-salt",
        mango_api_url="http://127.0.0.1:1/vpbx/", megaplan=(None, None, None))
    await db.executemany(
        "INSERT INTO employees (account_id, crm_id, name, extension, extension_manual, active)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        [(account_id, "1", "Яков", "101", False, True),
         (account_id, "2", "анна", None, False, True),
         (account_id, "3", "Борис", "555", True, True),
         (account_id, "4", "Вера", None, False, False),  # not active: not listed
         (account_id, "5", "Алексей", None, False, True),
         (account_id, "6", "Zoe", "", False, True)])  # an empty one is none
    return account_id


async def test_employees_are_listed_unmatched_first_then_by_name_with_their_source(
    db: asyncpg.Connection, account: int
) -> None:
    listed = [(e.crm_id, e.extension, e.source) for e in await employee_extensions(db, account)]
    assert listed == [("6", "", None), ("5", None, None), ("2", None, None),
                      ("3", "555", "manual"), ("1", "101", "pbx")]


async def test_an_extension_set_by_hand_is_manual_and_cleared_goes_back_to_the_match(
    db: asyncpg.Connection, account: int
) -> None:
    set_ = await set_extension(db, account, "1", "777")
    assert set_ is not None
    assert (set_.extension, set_.manual, set_.source) == ("777", True, "manual")
    cleared = await set_extension(db, account, "1", None)
    assert cleared is not None
    assert (cleared.extension, cleared.manual, cleared.source) == ("777", False, "pbx")
    assert await set_extension(db, account, "nobody", "101") is None
    assert await set_extension(db, account, "a\x00b", None) is None
    assert await set_extension(db, account + 1, "1", "101") is None  # another account's


@pytest.mark.parametrize("bad", ["", "10a", "101\n", "1" * 17, "١٠١"])
async def test_an_extension_that_is_not_digits_is_refused(
    db: asyncpg.Connection, account: int, bad: str
) -> None:
    with pytest.raises(ValueError, match="digits"):
        await set_extension(db, account, "1", bad)
    assert await db.fetchval("SELECT extension FROM employees WHERE crm_id = '1'") == "101"

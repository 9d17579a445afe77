"""A small data set covering every routing rule, shared by the router tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lookup.accounts import add_account

EMPLOYEES: list[dict[str, Any]] = [
    {"type": "employee", "id": "1", "name": "Anna", "extension": "101", "active": True},
    {"type": "employee", "id": "2", "name": "Boris", "extension": "102", "active": True},
    {"type": "employee", "id": "3", "name": "Vera", "extension": "103", "active": False},
    {"type": "employee", "id": "4", "name": "Gleb", "extension": None, "active": True},
]


def client(cid: str, phones: list[str], *resp: tuple[str, str]) -> dict[str, Any]:
    return {"type": "client", "id": cid, "kind": "human", "name": f"Client {cid}",
            "phones": phones, "responsibles": [{"type": t, "id": i} for t, i in resp]}


CLIENTS: list[dict[str, Any]] = [
    client("10", ["+7 (916) 123-45-67"], ("employee", "1")),            # routed to 101
    client("11", ["8 916 000-00-02"], ("client", "10"), ("employee", "2")),  # -> 102
    client("12", ["79160000003"], ("employee", "3"), ("employee", "2")),  # blocked -> 102
    client("13", ["79160000004"], ("employee", "4"), ("employee", "1")),  # no_extension
    client("14", ["79160000005"], ("employee", "3")),                    # no_active_responsible
    client("9", ["79160000006"], ("employee", "2")),                     # 9 < 20: -> 102
    client("20", ["79160000006"], ("employee", "1")),
]

ROUTED = "79161234567"
UNKNOWN = "79990000000"
ALL = EMPLOYEES + CLIENTS


async def add_programs(db: Any) -> None:
    """Two deal programs and their states in the default account's copy, as sync writes
    them (the settings page offers them by name)."""
    account_id = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    await db.execute("INSERT INTO programs (account_id, crm_id, name) VALUES "
                     "($1, '1', 'Продажи'), ($1, '2', 'Сервис')", account_id)
    await db.execute(
        "INSERT INTO program_states (account_id, program_id, crm_id, name) VALUES "
        "($1, '1', '11', 'Новая'), ($1, '1', '12', 'Встреча'), ($1, '2', '21', 'Заявка')",
        account_id)


async def add_shop(db: Any, client: Any) -> str:
    """A second account, ``shop``, once the service under test knows it (it hears of
    accounts by NOTIFY); its admin token."""
    token = await add_account(db, name="shop", mango_api_key="k2", mango_api_salt="s2",
                              mango_api_url="http://127.0.0.1:1/vpbx/")
    deadline = time.monotonic() + 5
    while (await client.get("/api/settings", params={"account": "shop"},
                            headers={"Authorization": "Bearer operator-token"})).status != 200:
        assert time.monotonic() < deadline, "the service never heard of the new account"
        await asyncio.sleep(0.05)
    return token

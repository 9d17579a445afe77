"""Reading the CRM's deal programs and their states as the copy has them."""

from __future__ import annotations

import asyncpg

from lookup.conn import Conn

__all__ = ["state_types"]


async def state_types(con: Conn | asyncpg.Pool, account_id: int) -> dict[tuple[str, str], str]:
    """(program id, state id) -> the state's type: active, positive or negative."""
    rows = await con.fetch(
        "SELECT program_id, crm_id, type FROM program_states WHERE account_id = $1",
        account_id)
    return {(r["program_id"], r["crm_id"]): r["type"] for r in rows}

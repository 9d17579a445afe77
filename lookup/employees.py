"""Reading the CRM's employees as the copy has them."""

from __future__ import annotations

import asyncpg

from lookup.conn import Conn

__all__ = ["active_extensions", "active_names"]


async def active_extensions(con: Conn | asyncpg.Pool, account_id: int) -> dict[str, str]:
    """Extension -> the active employee who has it (the call model speaks extensions)."""
    rows = await con.fetch(
        """SELECT extension, crm_id FROM employees
           WHERE account_id = $1 AND active AND extension IS NOT NULL AND extension <> ''
           ORDER BY crm_id""", account_id)
    return {r["extension"]: r["crm_id"] for r in rows}


async def active_names(con: Conn | asyncpg.Pool, account_id: int) -> list[tuple[str, str]]:
    """(CRM id, name) of every active employee, by name: what a person picks from."""
    rows = await con.fetch(
        """SELECT crm_id, name FROM employees WHERE account_id = $1 AND active
           ORDER BY lower(name), crm_id""", account_id)
    return [(r["crm_id"], r["name"] or r["crm_id"]) for r in rows]

"""Employee extensions set by hand, and employees whose e-mail matches no PBX user.

An extension an admin sets always wins over the PBX match (sync keeps it,
``employees.extension_manual``); clearing it hands the employee back to the
match, which the next sync applies.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from lookup.conn import Conn

__all__ = ["EXTENSION_RE", "employee_json", "set_extension", "unmatched_employees"]

EXTENSION_RE = re.compile(r"^[0-9]{1,16}$")


async def set_extension(con: Conn | asyncpg.Pool, account_id: int, employee_id: str,
                        extension: str | None) -> dict[str, Any] | None:
    """Set by hand (``extension``) or back to automatic (None); None for an unknown employee."""
    if "\x00" in employee_id:  # PostgreSQL text holds no NUL (it would refuse the query)
        return None
    if extension is None:
        row = await con.fetchrow(
            """UPDATE employees SET extension_manual = false, updated_at = now()
               WHERE account_id = $1 AND crm_id = $2
               RETURNING crm_id, name, email, extension, extension_manual, active""",
            account_id, employee_id)
    else:
        row = await con.fetchrow(
            """UPDATE employees SET extension = $3, extension_manual = true, updated_at = now()
               WHERE account_id = $1 AND crm_id = $2
               RETURNING crm_id, name, email, extension, extension_manual, active""",
            account_id, employee_id, extension)
    return None if row is None else employee_json(dict(row))


def employee_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["crm_id"], "name": row["name"], "email": row["email"],
            "extension": row["extension"], "manual": row["extension_manual"],
            "active": row["active"]}


async def unmatched_employees(con: Conn, account_id: int) -> list[dict[str, Any]]:
    """Employees with no extension: no PBX user has their e-mail, and none was set by hand."""
    rows = await con.fetch(
        """SELECT crm_id, name, email, extension, extension_manual, active FROM employees
           WHERE account_id = $1 AND extension IS NULL AND NOT extension_manual
           ORDER BY active DESC, length(crm_id), crm_id""", account_id)
    return [employee_json(dict(r)) for r in rows]

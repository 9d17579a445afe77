"""Employee extensions set by hand, and employees whose e-mail matches no PBX user.

An extension an admin sets always wins over the PBX match (sync keeps it,
``employees.extension_manual``); clearing it hands the employee back to the
match, which the next sync applies.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from lookup.conn import Conn
from lookup.employees import EXTENSION_RE, EmployeeExtension
from lookup.employees import set_extension as store_extension

__all__ = ["EXTENSION_RE", "employee_json", "set_extension", "unmatched_employees"]


async def set_extension(con: Conn | asyncpg.Pool, account_id: int, employee_id: str,
                        extension: str | None) -> dict[str, Any] | None:
    """Set by hand (``extension``) or back to automatic (None); None for an unknown employee."""
    found = await store_extension(con, account_id, employee_id, extension)
    return None if found is None else employee_json(found)


def employee_json(employee: EmployeeExtension) -> dict[str, Any]:
    return {"id": employee.crm_id, "name": employee.name, "email": employee.email,
            "extension": employee.extension, "manual": employee.manual,
            "active": employee.active}


async def unmatched_employees(con: Conn, account_id: int) -> list[dict[str, Any]]:
    """Employees with no extension: no PBX user has their e-mail, and none was set by hand."""
    rows = await con.fetch(
        """SELECT crm_id, name, email, extension, extension_manual, active FROM employees
           WHERE account_id = $1 AND extension IS NULL AND NOT extension_manual
           ORDER BY active DESC, length(crm_id), crm_id""", account_id)
    return [employee_json(EmployeeExtension(
        crm_id=r["crm_id"], name=r["name"], email=r["email"], extension=r["extension"],
        manual=r["extension_manual"], active=r["active"])) for r in rows]

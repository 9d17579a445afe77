"""Reading the CRM's employees as the copy has them, and their extensions.

An extension comes from the PBX (sync matches an employee's e-mail to a PBX
user) or is set by hand (``extension_manual``: sync never overrides it);
clearing the hand-set one hands the employee back to the match, which the next
sync applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import asyncpg

from lookup.conn import Conn

__all__ = ["EXTENSION_RE", "EmployeeExtension", "active_extensions", "employee_extensions",
           "set_extension"]

EXTENSION_RE = re.compile(r"\A[0-9]{1,16}\Z")  # \Z: "101\n" is not one

Source = Literal["manual", "pbx"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EmployeeExtension:
    crm_id: str
    name: str
    email: str | None
    extension: str | None  # None: unmatched, no call is routed to them
    manual: bool  # set by hand (extension_manual)
    active: bool

    @property
    def source(self) -> Source | None:
        """Where the extension came from: set by hand, matched from the PBX, or none."""
        if not self.extension:
            return None
        return "manual" if self.manual else "pbx"


async def active_extensions(con: Conn | asyncpg.Pool, account_id: int) -> dict[str, str]:
    """Extension -> the active employee who has it (the call model speaks extensions)."""
    rows = await con.fetch(
        """SELECT extension, crm_id FROM employees
           WHERE account_id = $1 AND active AND extension IS NOT NULL AND extension <> ''
           ORDER BY crm_id""", account_id)
    return {r["extension"]: r["crm_id"] for r in rows}


async def employee_extensions(con: Conn | asyncpg.Pool, account_id: int
                              ) -> list[EmployeeExtension]:
    """The active employees, those without an extension first (they need an admin),
    then by name; sorted here, so that Cyrillic names sort whatever the collation."""
    rows = await con.fetch(
        """SELECT crm_id, name, email, extension, extension_manual, active FROM employees
           WHERE account_id = $1 AND active""", account_id)
    found = [_employee(r) for r in rows]
    found.sort(key=lambda e: (e.source is not None, e.name.casefold(), e.name, e.crm_id))
    return found


async def set_extension(con: Conn | asyncpg.Pool, account_id: int, employee_id: str,
                        extension: str | None) -> EmployeeExtension | None:
    """Set by hand (``extension``, 1-16 digits) or back to automatic (None); None for
    an unknown employee. Raises ``ValueError`` for an extension that is not digits."""
    if extension is not None and not EXTENSION_RE.match(extension):
        raise ValueError("an extension is 1-16 digits")
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
    return None if row is None else _employee(row)


def _employee(r: asyncpg.Record) -> EmployeeExtension:
    return EmployeeExtension(crm_id=r["crm_id"], name=r["name"], email=r["email"],
                             extension=r["extension"], manual=r["extension_manual"],
                             active=r["active"])

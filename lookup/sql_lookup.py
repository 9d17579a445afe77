"""The routing decision made by one SQL query per call.

Not the product's hot path: the ``sql`` lookup mode exists as the benchmark's
"what a simpler implementation would do", and the CLI's ``route`` uses it so
that it answers at once without building an index. The rules are the same
function the index uses (``lookup.rules``).
"""

from __future__ import annotations

from collections.abc import Container, Sequence

import asyncpg

from lookup.conn import Conn
from lookup.rules import NO_CLIENT, Decision, EmployeeRef, decide_for_client, decide_passing_busy

__all__ = ["decide_sql", "decide_sql_for_client"]

_QUERY = """
WITH first_client AS (
    SELECT c.uid, c.crm_id
    FROM client_phones p JOIN clients c ON c.uid = p.client_uid AND NOT c.dropped
    WHERE p.account_id = $1 AND p.phone_key = $2
    ORDER BY c.crm_order NULLS LAST, c.crm_id
    LIMIT 1
)
SELECT f.crm_id AS client_id, e.crm_id AS employee_id, e.extension, e.active
FROM first_client f
LEFT JOIN client_responsibles r ON r.client_uid = f.uid AND r.kind = 'employee'
LEFT JOIN employees e ON e.account_id = $1 AND e.crm_id = r.ref_id
ORDER BY r.position
"""


async def decide_sql(con: Conn, account_id: int, key: int,
                     busy: Container[str] | None = None) -> Decision:
    rows = await con.fetch(_QUERY, account_id, key)
    number = str(key)
    if not rows:
        return Decision(number, NO_CLIENT)
    employees = _responsibles(rows)
    if busy:
        return decide_passing_busy(number, rows[0]["client_id"], employees,
                                   range(len(employees)), 0, None, busy)
    return decide_for_client(number, rows[0]["client_id"], employees, range(len(employees)))


_CLIENT_QUERY = """
SELECT c.crm_id AS client_id, e.crm_id AS employee_id, e.extension, e.active
FROM clients c
LEFT JOIN client_responsibles r ON r.client_uid = c.uid AND r.kind = 'employee'
LEFT JOIN employees e ON e.account_id = $1 AND e.crm_id = r.ref_id
WHERE c.account_id = $1 AND c.crm_id = $2
ORDER BY r.position
"""


async def decide_sql_for_client(con: Conn, account_id: int, key: int, client_id: str
                                ) -> Decision:
    """The decision for one client by its CRM id, dropped or not (replay: the client a
    past call had, which the number may no longer lead to)."""
    rows = await con.fetch(_CLIENT_QUERY, account_id, client_id)
    if not rows:
        return Decision(str(key), NO_CLIENT)
    employees = _responsibles(rows)
    return decide_for_client(str(key), client_id, employees, range(len(employees)))


def _responsibles(rows: Sequence[asyncpg.Record]) -> list[EmployeeRef | None]:
    """The client's responsibles in order (None: one that is not a known employee)."""
    return [EmployeeRef(r["employee_id"], r["extension"] or None, r["active"])
            if r["employee_id"] is not None else None for r in rows]

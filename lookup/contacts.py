"""Last contacts in the database: the journal's calls an employee took part in, and
the notification that tells every replica of a new one.

The memory itself (``automation.contacts``) is built from the call model, so
this only finds the calls and carries the news.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import orjson

from lookup.conn import Conn

__all__ = ["CONTACTS_CHANNEL", "calls_with_employees", "contact_note", "notify_contacts"]

CONTACTS_CHANNEL = "mango_contacts"


async def calls_with_employees(con: Conn | asyncpg.Pool, account_id: int, since: datetime
                               ) -> list[str]:
    """Entries with an employee's leg (offered, answered or calling out) since
    ``since``, oldest first (so memory fills in time order)."""
    rows = await con.fetch(
        """SELECT entry_id FROM call_events
           WHERE account_id = $1 AND received_at >= $2 AND entry_id IS NOT NULL
             AND kind = 'call' AND (location = 'abonent' OR payload->'from' ? 'extension')
           GROUP BY entry_id ORDER BY max(received_at)""",
        account_id, since)
    return [r["entry_id"] for r in rows]


def contact_note(account_id: int, key: int, employee_id: str, at: float) -> str:
    """The ``mango_contacts`` payload: an employee talked to the number ``key`` at ``at``."""
    return orjson.dumps({"a": account_id, "n": key, "e": employee_id, "t": at}).decode()


async def notify_contacts(con: Conn, notes: list[str]) -> None:
    await con.execute(f"SELECT pg_notify('{CONTACTS_CHANNEL}', n) FROM unnest($1::text[]) AS n",
                      notes)

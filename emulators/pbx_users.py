"""PBX users that match the Megaplan emulator's employees (same seed and size).

``config/users/request`` answers these, so sync can match employees to
extensions by e-mail exactly as against a real MANGO OFFICE account. The
emulator's last employee has no extension and so no PBX user: it is the one
``mango-router employee unmatched`` lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from emulators.megaplan_dataset import generate
from emulators.megaplan_store import EmployeeRow

__all__ = ["matching_users", "users_for"]


def users_for(employees: Iterable[EmployeeRow]) -> list[dict[str, Any]]:
    """One PBX user per employee that has an extension, in the VPBX answer's shape."""
    users: list[dict[str, Any]] = []
    for e in sorted(employees, key=lambda row: int(row.id) if row.id.isdigit() else 0):
        if not e.extension:
            continue
        users.append({
            "general": {"name": e.name, "email": e.email or "", "department": ""},
            "telephony": {"extension": e.extension, "outgoingline": "", "numbers": []},
        })
    return users


def matching_users(clients: int, seed: int) -> list[dict[str, Any]]:
    """The users for ``generate(clients, seed)`` (about 1.6 s for 100,000 clients)."""
    return users_for(generate(clients, seed).employees.values())

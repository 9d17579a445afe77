"""Reading the CRM's deal programs and their states as the copy has them."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from lookup.conn import Conn

__all__ = ["Program", "ProgramState", "programs", "state_types"]


@dataclass(frozen=True, slots=True)
class ProgramState:
    id: str
    name: str
    type: str  # active, positive, negative


@dataclass(frozen=True, slots=True)
class Program:
    id: str
    name: str
    states: tuple[ProgramState, ...]


async def programs(con: Conn | asyncpg.Pool, account_id: int) -> list[Program]:
    """The account's programs by name, each with its states in the CRM's id order (the
    settings page offers them by name)."""
    rows = await con.fetch(
        """SELECT p.crm_id, p.name, s.crm_id AS state_id, s.name AS state_name, s.type
           FROM programs p LEFT JOIN program_states s
             ON s.account_id = p.account_id AND s.program_id = p.crm_id
           WHERE p.account_id = $1
           ORDER BY lower(p.name), p.crm_id,
                    CASE WHEN s.crm_id ~ '^[0-9]{1,18}$' THEN s.crm_id::bigint END, s.crm_id""",
        account_id)
    found: dict[str, tuple[str, list[ProgramState]]] = {}
    for r in rows:
        _, states = found.setdefault(r["crm_id"], (r["name"], []))
        if r["state_id"] is not None:
            states.append(ProgramState(r["state_id"], r["state_name"], r["type"]))
    return [Program(pid, name, tuple(states)) for pid, (name, states) in found.items()]


async def state_types(con: Conn | asyncpg.Pool, account_id: int) -> dict[tuple[str, str], str]:
    """(program id, state id) -> the state's type: active, positive or negative."""
    rows = await con.fetch(
        "SELECT program_id, crm_id, type FROM program_states WHERE account_id = $1",
        account_id)
    return {(r["program_id"], r["crm_id"]): r["type"] for r in rows}

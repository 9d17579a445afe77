"""Accounts: one company each (its PBX, its CRM, its settings, its admin token).

Tokens are shown once and stored as SHA-256; a token is random, so a plain
hash is enough (no salt or stretching needed against guessing).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from lookup.conn import Conn
from lookup.settings import DealTarget, Settings, SettingsError, merge_update

__all__ = [
    "Account",
    "AccountExists",
    "account_size",
    "add_account",
    "check_name",
    "check_url",
    "checked_update",
    "fetch_accounts",
    "hash_token",
    "new_token",
    "remove_account",
    "save_settings",
    "update_settings",
    "upsert_default_account",
]


class AccountExists(ValueError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    id: int
    name: str
    mango_api_key: str
    mango_api_salt: str
    mango_api_url: str
    megaplan_url: str | None
    megaplan_username: str | None
    megaplan_password: str | None
    token_hash: str | None
    settings: Settings

    def __repr__(self) -> str:  # no secrets in logs
        return f"Account(id={self.id}, name={self.name!r})"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _from_row(row: asyncpg.Record) -> Account:
    stored = row["settings"]
    return Account(
        id=row["id"],
        name=row["name"],
        mango_api_key=row["mango_api_key"],
        mango_api_salt=row["mango_api_salt"],
        mango_api_url=row["mango_api_url"],
        megaplan_url=row["megaplan_url"],
        megaplan_username=row["megaplan_username"],
        megaplan_password=row["megaplan_password"],
        token_hash=row["token_hash"],
        settings=Settings.from_stored(orjson.loads(stored) if isinstance(stored, str) else stored),
    )


async def fetch_accounts(con: Conn | asyncpg.Pool) -> list[Account]:
    rows = await con.fetch("SELECT * FROM accounts ORDER BY id")
    return [_from_row(r) for r in rows]


async def upsert_default_account(
    con: Conn,
    *,
    mango_api_key: str,
    mango_api_salt: str,
    mango_api_url: str,
    megaplan: tuple[str | None, str | None, str | None],
) -> int:
    """The ``default`` account from the environment, created or updated (settings kept)."""
    account_id: int = await con.fetchval(
        """
        INSERT INTO accounts (name, mango_api_key, mango_api_salt, mango_api_url,
                              megaplan_url, megaplan_username, megaplan_password)
        VALUES ('default', $1, $2, $3, $4, $5, $6)
        ON CONFLICT (name) DO UPDATE SET
            mango_api_key = EXCLUDED.mango_api_key, mango_api_salt = EXCLUDED.mango_api_salt,
            mango_api_url = EXCLUDED.mango_api_url, megaplan_url = EXCLUDED.megaplan_url,
            megaplan_username = EXCLUDED.megaplan_username,
            megaplan_password = EXCLUDED.megaplan_password, updated_at = now()
        WHERE (accounts.mango_api_key, accounts.mango_api_salt, accounts.mango_api_url,
               accounts.megaplan_url, accounts.megaplan_username, accounts.megaplan_password)
              IS DISTINCT FROM
              (EXCLUDED.mango_api_key, EXCLUDED.mango_api_salt, EXCLUDED.mango_api_url,
               EXCLUDED.megaplan_url, EXCLUDED.megaplan_username, EXCLUDED.megaplan_password)
        RETURNING id
        """,
        mango_api_key,
        mango_api_salt,
        mango_api_url,
        *megaplan,
    )
    if account_id is None:  # unchanged: nothing was written
        account_id = await con.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    return account_id


async def add_account(
    con: Conn,
    *,
    name: str,
    mango_api_key: str,
    mango_api_salt: str,
    mango_api_url: str,
    megaplan: tuple[str | None, str | None, str | None] = (None, None, None),
) -> str:
    """Create an account; return its admin token (shown once, stored hashed).

    ``ValueError`` for a name that is not letters, digits, ``-`` and ``_``, or a PBX or
    Megaplan URL that is not http(s) (stored, it would stop the CRM's jobs later).
    """
    check_name(name)
    check_url("the MANGO OFFICE API URL", mango_api_url)
    if megaplan[0] is not None:
        check_url("the Megaplan URL", megaplan[0])
    token = secrets.token_urlsafe(32)
    try:
        await con.execute(
            """
            INSERT INTO accounts (name, mango_api_key, mango_api_salt, mango_api_url,
                                  megaplan_url, megaplan_username, megaplan_password, token_hash)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            name,
            mango_api_key,
            mango_api_salt,
            mango_api_url,
            *megaplan,
            hash_token(token),
        )
    except asyncpg.UniqueViolationError as exc:
        what = "name" if "name" in str(exc.constraint_name) else "MANGO OFFICE API key"
        raise AccountExists(f"an account with this {what} exists already") from None
    return token


NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_name(name: str) -> None:
    """Account names go into URLs, logs and metric labels: letters, digits, - and _."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"account name {name!r}: use 1-64 letters, digits, '-' or '_'")


def check_url(what: str, url: str) -> None:
    """An http(s) URL with a host, as the PBX and CRM clients need."""
    # the clients' own test (a scheme in capitals, or a space before it, would not do)
    if not url.startswith(("http://", "https://")) or not urlsplit(url).netloc:
        raise ValueError(f"{what} must be an http(s) URL, not {url!r}")


async def new_token(con: Conn, name: str) -> str | None:
    """A new admin token for the account (the old one stops working); None: no account."""
    token = secrets.token_urlsafe(32)
    result: str = await con.execute("UPDATE accounts SET token_hash = $2, updated_at = now()"
                                    " WHERE name = $1", name, hash_token(token))
    return None if result == "UPDATE 0" else token


async def account_size(con: Conn, name: str) -> tuple[int, int] | None:
    """(clients, journaled events) of the account, to say what a removal deletes."""
    row = await con.fetchrow(
        """SELECT (SELECT count(*) FROM clients c WHERE c.account_id = a.id) AS clients,
                  (SELECT count(*) FROM call_events e WHERE e.account_id = a.id) AS events
           FROM accounts a WHERE a.name = $1""", name)
    return None if row is None else (row["clients"], row["events"])


async def remove_account(con: Conn, name: str) -> bool:
    result: str = await con.execute("DELETE FROM accounts WHERE name = $1", name)
    return result != "DELETE 0"


async def save_settings(con: Conn | asyncpg.Pool, account_id: int,
                        settings: Settings) -> None:
    await con.execute(
        "UPDATE accounts SET settings = $2::jsonb, updated_at = now() WHERE id = $1",
        account_id,
        orjson.dumps(settings.to_json()).decode(),
    )



async def update_settings(con: Conn, account_id: int, update: Mapping[str, Any]
                          ) -> Settings | None:
    """The account's stored settings with ``update``'s keys replaced, checked and saved.

    Merged into the stored row under a lock, not into a replica's copy: two
    updates of different keys, on one replica or two, both stay. The lock is
    FOR NO KEY UPDATE: the journal's and the decision record's statements take
    FOR KEY SHARE on the account (migration 0014), and a save must not hold them
    up. Employee and deal ids are checked against the CRM copy. ``SettingsError`` (from
    ``merge_update``) leaves everything as it was; None: no such account.
    """
    async with con.transaction():
        stored = await con.fetchval(
            "SELECT settings FROM accounts WHERE id = $1 FOR NO KEY UPDATE", account_id)
        if stored is None:
            return None
        merged = await checked_update(con, account_id, Settings.from_stored(
            orjson.loads(stored)), update)
        await save_settings(con, account_id, merged)
    return merged


async def checked_update(con: Conn, account_id: int, current: Settings,
                         update: Mapping[str, Any]) -> Settings:
    """``current`` with ``update`` merged and checked against the CRM copy (employees,
    programs and states); ``SettingsError`` names the first bad field. Saves nothing."""
    employees = {r["crm_id"] for r in await con.fetch(
        "SELECT crm_id FROM employees WHERE account_id = $1 AND active", account_id)}
    states = {(r["program_id"], r["crm_id"]) for r in await con.fetch(
        "SELECT program_id, crm_id FROM program_states WHERE account_id = $1", account_id)}

    def known_deal(deal: DealTarget) -> bool:
        return (deal.program_id, deal.state_id) in states

    merged = merge_update(current, update, known_employees=employees.__contains__,
                          known_deal=known_deal)
    if merged.timezone != current.timezone and not await con.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)", merged.timezone):
        # the overview counts calls per hour in PostgreSQL, whose zones may be older
        raise SettingsError("timezone", "is not a time zone this database knows")
    return merged

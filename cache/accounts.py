"""Every account, in memory: found by PBX key on each request, by name in the APIs.

Reloaded whole from the database whenever ``accounts`` changes (a NOTIFY from
its trigger), so settings saved on one replica act on all of them within a
second. One object for the life of the app; its contents change.
"""

from __future__ import annotations

from lookup.accounts import Account

__all__ = ["AccountRegistry"]


class AccountRegistry:
    __slots__ = ("_by_id", "_by_key", "_by_name")

    def __init__(self) -> None:
        self._by_key: dict[str, Account] = {}
        self._by_name: dict[str, Account] = {}
        self._by_id: dict[int, Account] = {}

    def replace(self, accounts: list[Account]) -> None:
        self._by_key = {a.mango_api_key: a for a in accounts}
        self._by_name = {a.name: a for a in accounts}
        self._by_id = {a.id: a for a in accounts}

    def by_key(self, api_key: str) -> Account | None:
        return self._by_key.get(api_key)

    def by_name(self, name: str) -> Account | None:
        return self._by_name.get(name)

    def by_id(self, account_id: int) -> Account | None:
        return self._by_id.get(account_id)

    def all(self) -> list[Account]:
        return list(self._by_id.values())

    def update(self, account: Account) -> None:
        """Put a changed account in at once (read your own write); the NOTIFY follows."""
        self.replace([account if a.id == account.id else a for a in self._by_id.values()])

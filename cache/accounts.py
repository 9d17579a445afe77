"""Every account, in memory: found by PBX key on each request, by name in the APIs.

Reloaded whole from the database whenever ``accounts`` changes (a NOTIFY from
its trigger), so settings saved on one replica act on all of them within a
second. One object for the life of the app; its contents change. Whoever keeps
something per account (metrics' series, health notes) hears of an account that
is gone through ``on_removed``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from lookup.accounts import Account
from lookup.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["AccountRegistry"]


class AccountRegistry:
    __slots__ = ("_by_id", "_by_key", "_by_name", "_removed")

    def __init__(self) -> None:
        self._by_key: dict[str, Account] = {}
        self._by_name: dict[str, Account] = {}
        self._by_id: dict[int, Account] = {}
        self._removed: list[Callable[[Account], None]] = []

    def replace(self, accounts: list[Account]) -> None:
        live = {a.id for a in accounts}
        gone = [a for i, a in self._by_id.items() if i not in live]
        self._by_key = {a.mango_api_key: a for a in accounts}
        self._by_name = {a.name: a for a in accounts}
        self._by_id = {a.id: a for a in accounts}
        for account in gone:
            for callback in self._removed:
                try:
                    callback(account)
                except Exception:  # one listener's bug must not keep the others unheard
                    logger.exception("a listener failed on a removed account",
                                     extra={"account": account.name})

    def on_removed(self, callback: Callable[[Account], None]) -> None:
        """Call ``callback`` with each account that a reload finds gone."""
        self._removed.append(callback)

    def by_key(self, api_key: str) -> Account | None:
        return self._by_key.get(api_key)

    def by_name(self, name: str) -> Account | None:
        return self._by_name.get(name)

    def by_id(self, account_id: int) -> Account | None:
        return self._by_id.get(account_id)

    def all(self) -> list[Account]:
        return list(self._by_id.values())

    def update_settings(self, account_id: int, settings: Settings) -> None:
        """An account's saved settings, in at once (read your own write; the NOTIFY
        follows), on the account as this registry has it now: a token or key changed
        while the save was under way is not put back."""
        self.replace([dataclasses.replace(a, settings=settings) if a.id == account_id else a
                      for a in self._by_id.values()])

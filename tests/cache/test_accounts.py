"""The accounts in memory tell who keeps something per account of an account that went."""

from __future__ import annotations

import dataclasses

from cache.accounts import AccountRegistry
from lookup.accounts import Account
from lookup.settings import Settings


def _account(account_id: int, name: str, *, dry_run: bool = False) -> Account:
    return Account(id=account_id, name=name, mango_api_key=f"key-{name}",
                   mango_api_salt="salt", mango_api_url="http://127.0.0.1:1/vpbx/",
                   megaplan_url=None, megaplan_username=None, megaplan_password=None,
                   token_hash=None, settings=Settings(dry_run=dry_run))


def test_only_accounts_a_reload_finds_gone_are_announced_removed() -> None:
    registry = AccountRegistry()
    gone: list[str] = []
    registry.on_removed(lambda a: gone.append(a.name))
    registry.replace([_account(1, "default"), _account(2, "acme")])
    registry.update_settings(2, Settings(dry_run=True))  # changed, not removed
    assert gone == []
    registry.replace([_account(1, "default")])
    assert gone == ["acme"]
    assert registry.by_name("acme") is None


def test_a_failing_listener_does_not_keep_the_others_from_hearing() -> None:
    registry = AccountRegistry()
    heard: list[str] = []

    def broken(_account: Account) -> None:
        raise RuntimeError("a bug")

    registry.on_removed(broken)
    registry.on_removed(lambda a: heard.append(a.name))
    registry.replace([_account(1, "acme")])
    registry.replace([])
    assert heard == ["acme"]


def test_saved_settings_go_on_the_account_as_the_registry_has_it_now() -> None:
    # a token issued while a save was under way is not put back by the save
    registry = AccountRegistry()
    before = _account(1, "acme")
    registry.replace([dataclasses.replace(before, token_hash="new-token-hash")])
    registry.update_settings(before.id, Settings(dry_run=True))
    now = registry.by_id(1)
    assert now is not None
    assert (now.token_hash, now.settings.dry_run) == ("new-token-hash", True)

"""The sync's metrics are per account, and a removed account's series go."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from lookup.accounts import Account
from lookup.settings import Settings
from sync.metrics import SyncMetrics


def _account(account_id: int, name: str) -> Account:
    return Account(id=account_id, name=name, mango_api_key=name, mango_api_salt="s",
                   mango_api_url="http://127.0.0.1:1/vpbx/", megaplan_url="http://crm",
                   megaplan_username="u", megaplan_password="p", token_hash=None,
                   settings=Settings())


def test_a_removed_accounts_sync_series_all_go_and_the_others_stay() -> None:
    registry = CollectorRegistry()
    m = SyncMetrics(registry)
    for account in (_account(1, "default"), _account(2, "acme")):
        m.duration.labels(account.name, "full").observe(1.5)
        m.records.labels(account.name, "clients").inc(10)
        m.errors.labels(account.name, "pass").inc()
        m.success[account.id] = (account.name, 0.0)
    m.forget_account(_account(2, "acme"))
    text = generate_latest(registry).decode()
    assert 'account="acme"' not in text
    for line in ('mango_router_sync_duration_seconds_count{account="default",kind="full"} 1.0',
                 'mango_router_sync_records_total{account="default",kind="clients"} 10.0',
                 'mango_router_sync_errors_total{account="default",kind="pass"} 1.0',
                 'mango_router_sync_lag_seconds{account="default"}'):
        assert line in text, line

"""The automation's metrics are per account, and a removed account's series go."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from automation.metrics import AutomationMetrics
from lookup.accounts import Account
from lookup.settings import Settings


def test_a_removed_accounts_outbox_series_all_go_and_the_others_stay() -> None:
    registry = CollectorRegistry()
    m = AutomationMetrics(registry)
    for name in ("default", "acme"):
        m.planned.labels(name, "create_deal").inc()
        m.actions.labels(name, "create_deal", "done").inc()
        m.depth.labels(name).set(3)
        m.oldest.labels(name).set(1.5)
    m.forget_account(Account(id=2, name="acme", mango_api_key="k", mango_api_salt="s",
                             mango_api_url="http://127.0.0.1:1/vpbx/", megaplan_url=None,
                             megaplan_username=None, megaplan_password=None, token_hash=None,
                             settings=Settings()))
    text = generate_latest(registry).decode()
    assert 'account="acme"' not in text
    for line in ('mango_router_crm_actions_planned_total{account="default",kind="create_deal"}',
                 'mango_router_crm_actions_total{account="default",kind="create_deal",'
                 'outcome="done"}',
                 'mango_router_outbox_depth{account="default"} 3.0',
                 'mango_router_outbox_oldest_seconds{account="default"} 1.5'):
        assert line in text, line

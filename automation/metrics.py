"""The call automation's metrics, on the registry the app gives it.

Labels are bounded: an action kind, an outcome, an account's name (accounts
are few and named by the operator). A removed account's series go
(``forget_account``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from lookup.accounts import Account
from sync.metrics import drop_account_series

__all__ = ["AutomationMetrics"]


class AutomationMetrics:
    __slots__ = ("actions", "depth", "live_calls", "oldest", "planned")

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.planned = Counter(
            "mango_router_crm_actions_planned", "CRM actions planned, by account and kind.",
            ["account", "kind"], registry=r)
        self.actions = Counter(
            "mango_router_crm_actions",
            "CRM action attempts by account, kind and outcome (done, retry, uncertain, auth, "
            "failed).",
            ["account", "kind", "outcome"], registry=r)
        self.depth = Gauge(
            "mango_router_outbox_depth", "CRM actions pending, per account.", ["account"],
            registry=r)
        self.oldest = Gauge(
            "mango_router_outbox_oldest_seconds",
            "Age of the oldest pending CRM action, per account.", ["account"], registry=r)
        self.live_calls = Gauge(
            "mango_router_live_calls", "Calls this replica follows until they end.", registry=r)

    def forget_account(self, account: Account) -> None:
        """The account is gone: none of its series stay."""
        drop_account_series(self.planned, ("account", "kind"), account.name)
        drop_account_series(self.actions, ("account", "kind", "outcome"), account.name)
        drop_account_series(self.depth, ("account",), account.name)
        drop_account_series(self.oldest, ("account",), account.name)

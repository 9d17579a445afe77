"""The sync's Prometheus metrics, registered on the registry the app gives it.

Every figure is per account (accounts are few and named by the operator, so
the label is bounded). Lag is only for accounts this replica syncs (one with
no CRM has none): the age of the account's copy, from the start of its last
complete pass. A removed account's series go (``forget_account``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lookup.accounts import Account

__all__ = ["SyncMetrics", "drop_account_series"]


def drop_account_series(metric: Counter | Gauge | Histogram, labels: Sequence[str],
                        account: str) -> None:
    """Remove every series of ``metric`` (labelled ``labels``) whose ``account`` is this."""
    found = {tuple(s.labels[name] for name in labels)
             for family in metric.collect() for s in family.samples
             if s.labels.get("account") == account}
    for values in found:
        metric.remove(*values)


class SyncMetrics:
    __slots__ = ("duration", "errors", "records", "success")

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.duration = Histogram(
            "mango_router_sync_duration_seconds",
            "CRM sync passes by account and kind (full, incremental).",
            ["account", "kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
            registry=r,
        )
        self.records = Counter(
            "mango_router_sync_records", "CRM records read by sync, by account and kind.",
            ["account", "kind"], registry=r,
        )
        self.errors = Counter(
            "mango_router_sync_errors",
            "Sync problems by account: a record refused, or a pass failed.",
            ["account", "kind"], registry=r,
        )
        # account id -> (its name, the wall time its copy is from)
        self.success: dict[int, tuple[str, float]] = {}
        registry.register(_Lag(self.success))

    def forget(self, account_id: int) -> None:
        """The account is gone, or has no CRM any more: no lag to show."""
        self.success.pop(account_id, None)

    def forget_account(self, account: Account) -> None:
        """The account is gone: none of its series stay."""
        self.forget(account.id)
        for metric in (self.duration, self.records, self.errors):
            drop_account_series(metric, ("account", "kind"), account.name)


class _Lag(Collector):
    def __init__(self, success: dict[int, tuple[str, float]]) -> None:
        self._success = success

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "mango_router_sync_lag_seconds",
            "Age of each synced account's CRM copy (from the start of its last complete pass).",
            labels=["account"])
        now = time.time()
        for account, since in sorted(self._success.values()):
            lag.add_metric([account], max(0.0, now - since))
        yield lag

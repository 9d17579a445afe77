"""The sync's Prometheus metrics, registered on the registry the app gives it.

Lag is per account, and only for accounts this replica syncs (one with no CRM
has none): the age of the account's copy, from the start of its last complete
pass. Accounts are few and named by the operator, so the label is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["SyncMetrics"]


class SyncMetrics:
    __slots__ = ("duration", "errors", "records", "success")

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.duration = Histogram(
            "mango_router_sync_duration_seconds", "CRM sync passes by kind (full, incremental).",
            ["kind"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
            registry=r,
        )
        self.records = Counter(
            "mango_router_sync_records", "CRM records read by sync, by kind.", ["kind"],
            registry=r,
        )
        self.errors = Counter(
            "mango_router_sync_errors", "Sync problems: a record refused, or a pass failed.",
            ["kind"], registry=r,
        )
        # account id -> (its name, the wall time its copy is from)
        self.success: dict[int, tuple[str, float]] = {}
        registry.register(_Lag(self.success))

    def forget(self, account_id: int) -> None:
        """The account is gone, or has no CRM any more: no lag to show."""
        self.success.pop(account_id, None)


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

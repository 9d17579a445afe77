"""The sync's Prometheus metrics, registered on the registry the app gives it.

Lag is the age of the oldest account copy this replica keeps, from the start
of its last complete pass.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self.success: dict[int, float] = {}  # account id -> wall time its copy is from
        lag = Gauge(
            "mango_router_sync_lag_seconds",
            "Age of the oldest CRM copy this replica syncs (0 when it syncs none).", registry=r,
        )
        lag.set_function(self._lag)

    def _lag(self) -> float:
        if not self.success:
            return 0.0
        return max(0.0, time.time() - min(self.success.values()))

"""The service's Prometheus metrics, on a registry of the app's own.

Labels are bounded: an outcome, a result class, an event kind — never a
number, a path or an account's data.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5,
)


class Metrics:
    __slots__ = ("_children", "decisions", "events", "journal_batch", "pbx_commands", "registry",
                 "route_latency", "solo")

    def __init__(self, phones: Callable[[], float]) -> None:
        self._children: dict[tuple[int, str], Counter] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "mango_router_decisions", "Routing decisions by outcome.", ["outcome"], registry=r
        )
        self.route_latency = Histogram(
            "mango_router_route_latency_seconds",
            "From the trigger received to commands/route sent.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pbx_commands = Counter(
            "mango_router_pbx_commands", "Commands sent to the PBX by result.", ["result"],
            registry=r,
        )
        self.solo = Gauge(
            "mango_router_solo",
            "1 while this replica routes alone (each claim written after its route).",
            registry=r,
        )
        self.events = Counter(
            "mango_router_events", "PBX notifications accepted, by kind.", ["kind"], registry=r
        )
        self.journal_batch = Histogram(
            "mango_router_journal_batch_size", "Events written per journal round trip.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500), registry=r,
        )
        index_phones = Gauge(
            "mango_router_index_phones", "Phone keys in the routing index.", registry=r
        )
        index_phones.set_function(phones)

    # Label children are looked up once per value, not once per event: labels() takes
    # a lock and builds a tuple on every call. The values are a small fixed set.
    def _child(self, counter: Counter, value: str) -> Counter:
        key = (id(counter), value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(value)
        return child

    def decision(self, outcome: str) -> Counter:
        return self._child(self.decisions, outcome)

    def event(self, kind: str) -> Counter:
        return self._child(self.events, kind)

    def pbx_command(self, result: str) -> Counter:
        return self._child(self.pbx_commands, result)

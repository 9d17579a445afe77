"""The service's Prometheus metrics, on a registry of the app's own.

Labels are bounded: an outcome, a result class, an event kind, an account's
name (accounts are few and made by the operator) — never a number, a path or
an account's data. A removed account's series go with it (``forget_account``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lookup.accounts import Account

__all__ = ["Metrics", "PhonesByAccount"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5,
)

PhonesByAccount = Callable[[], Iterable[tuple[str, int]]]  # (account name, phone keys)


class Metrics:
    __slots__ = ("_children", "decisions", "events", "journal_batch", "pbx_commands", "registry",
                 "route_latency", "solo")

    def __init__(self, phones: PhonesByAccount) -> None:
        # (counter's id, account, value) -> its child; see _child
        self._children: dict[tuple[int, str, str], Counter] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "mango_router_decisions", "Routing decisions by account and outcome.",
            ["account", "outcome"], registry=r
        )
        self.route_latency = Histogram(
            "mango_router_route_latency_seconds",
            "From the trigger received to commands/route sent.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pbx_commands = Counter(
            "mango_router_pbx_commands", "Route commands sent to the PBX by account and result.",
            ["account", "result"], registry=r,
        )
        self.solo = Gauge(
            "mango_router_solo",
            "1 while this replica routes alone (each claim written after its route).",
            registry=r,
        )
        self.events = Counter(
            "mango_router_events", "PBX notifications accepted, by account and kind.",
            ["account", "kind"], registry=r
        )
        self.journal_batch = Histogram(
            "mango_router_journal_batch_size", "Events written per journal round trip.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500), registry=r,
        )
        r.register(_IndexPhones(phones))

    # Label children are looked up once per (account, value), not once per event:
    # labels() takes a lock and builds a tuple on every call. The values are a small
    # fixed set, the accounts few.
    def _child(self, counter: Counter, account: str, value: str) -> Counter:
        key = (id(counter), account, value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(account, value)
        return child

    def decision(self, account: str, outcome: str) -> Counter:
        return self._child(self.decisions, account, outcome)

    def event(self, account: str, kind: str) -> Counter:
        return self._child(self.events, account, kind)

    def pbx_command(self, account: str, result: str) -> Counter:
        return self._child(self.pbx_commands, account, result)

    def forget_account(self, account: Account) -> None:
        """The account is gone: its series leave /metrics (the phones go with its index)."""
        counters = {id(c): c for c in (self.decisions, self.events, self.pbx_commands)}
        for key in [k for k in self._children if k[1] == account.name]:
            del self._children[key]
            counters[key[0]].remove(account.name, key[2])


class _IndexPhones(Collector):
    """``mango_router_index_phones{account}``: read from the indexes at each scrape, so an
    account without an index (removed, or not loaded yet) has no series."""

    def __init__(self, phones: PhonesByAccount) -> None:
        self._phones = phones

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("mango_router_index_phones",
                                   "Phone keys in the routing index, per account.",
                                   labels=["account"])
        for account, count in sorted(self._phones()):
            family.add_metric([account], float(count))
        yield family

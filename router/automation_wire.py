"""What the serving process and its automation child say to each other: one JSON
document a line on a socket pair.

Down (serve → child): the events journaled, ``[[account id, entry id, plan now,
arrived], …]`` (``arrived``: Unix seconds). An item of account ``MISSED`` says that
events which arrived from its ``arrived`` on were dropped, not sent.
Up (child → serve): the child's metrics, ``{"metrics": [[name, help, type,
[[sample, labels, value], …]], …]}``, which ``RelayedMetrics`` shows on the
serving process's ``/metrics`` (the child serves no HTTP).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["LINE_LIMIT", "MISSED", "RelayedMetrics", "Seen", "decode_seen", "encode_metrics",
           "encode_seen"]

LINE_LIMIT = 64 * 1024 * 1024  # a reader's line limit: a batch after a long child restart
MISSED = 0  # no account has this id (they start at 1)

# account id, entry id, whether the call is worth planning now, when the event arrived
Seen = tuple[int, str, bool, float]


def encode_seen(batch: Iterable[Seen]) -> bytes:
    return orjson.dumps(list(batch)) + b"\n"


def decode_seen(line: bytes) -> list[Seen]:
    """The events of a line; ``ValueError`` for a line that is not such a batch."""
    try:
        raw: Any = orjson.loads(line)
        return [(int(a), str(e), bool(p), float(t)) for a, e, p, t in raw]
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"not a batch of events: {line[:100]!r}") from exc


def encode_metrics(registry: CollectorRegistry) -> bytes:
    families = [[m.name, m.documentation, m.type,
                 [[s.name, s.labels, s.value] for s in m.samples]]
                for m in registry.collect()]
    return orjson.dumps({"metrics": families}) + b"\n"


class RelayedMetrics(Collector):
    """The child's latest metrics, collected with the serving process's own."""

    __slots__ = ("_families",)

    def __init__(self) -> None:
        self._families: list[Metric] = []

    def update(self, line: bytes) -> None:
        """Take a metrics line; ``ValueError`` for one that is not."""
        try:
            raw: Any = orjson.loads(line)
            families = []
            for name, documentation, kind, samples in raw["metrics"]:
                family = Metric(name, documentation, kind)
                for sample, labels, value in samples:
                    # orjson writes NaN and infinities as null
                    family.add_sample(sample, dict(labels),
                                      math.nan if value is None else float(value))
                families.append(family)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a metrics line: {line[:100]!r}") from exc
        self._families = families

    def clear(self) -> None:
        """The child is gone: its figures are not current any more."""
        self._families = []

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

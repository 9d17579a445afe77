"""The benchmark's data: employees and clients written as an import file (PROTOCOLS §4),
with what the routing rules say about every number, and the callers of each step.

Deterministic for a seed. Clients' phones are written in mixed formats (international,
national, digits) so that normalisation is paid; the PBX sends digits. A few clients
put a client before their manager, a few a blocked employee, and every 100th client
shares a number with a later one (the smaller CRM id wins), so the rules are exercised.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import orjson

__all__ = [
    "CallPlan",
    "DatasetInfo",
    "FreshnessCandidate",
    "plan_calls",
    "write_dataset",
]

_CLIENT_ID_BASE = 20_000_000  # every id has the same number of digits
_EMPLOYEE_ID_BASE = 1_000_000
_SHARE_EVERY = 100  # client j with j % 100 == 7 also has client (j + 50)'s first phone
_SHARE_OFFSET = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class FreshnessCandidate:
    client_id: str
    number: str  # canonical digits, held by this client only
    extension: str  # what the number routes to now


@dataclass(slots=True, kw_only=True)
class DatasetInfo:
    path: Path
    clients: int
    employees: int
    phones: int  # distinct numbers
    routable: list[str] = field(default_factory=list)  # canonical numbers that route
    expected: dict[str, str] = field(default_factory=dict)  # canonical -> extension
    routed_employees: list[tuple[str, str]] = field(default_factory=list)  # (id, extension)
    freshness: list[FreshnessCandidate] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)  # numbers as written, for lookups


def _employee(k: int) -> tuple[str, str | None, bool]:
    """(id, extension, active) of employee ``k``."""
    active = k % 25 != 24
    extension = None if k % 40 == 39 else str(100 + k)
    return str(_EMPLOYEE_ID_BASE + k), extension, active


def _fmt(canon: str, style: int) -> str:
    d = canon[1:]
    if style == 0:
        return f"+7 ({d[0:3]}) {d[3:6]}-{d[6:8]}-{d[8:10]}"
    if style == 1:
        return f"8 {d[0:3]} {d[3:6]}-{d[6:8]}-{d[8:10]}"
    return canon


def write_dataset(
    path: Path,
    *,
    clients: int,
    seed: int,
    collect_expected: bool = True,
    samples: int = 0,
) -> DatasetInfo:
    """Write ``clients`` clients (1.5 phones each) and their employees to ``path``."""
    rng = random.Random(seed)
    n_emp = max(50, clients // 500)
    n_phones = clients + (clients + 1) // 2
    # distinct mobile numbers 79XXXXXXXXX; unknown callers use 7495XXXXXXX instead
    numbers = rng.sample(range(10**9), n_phones)
    employees = [_employee(k) for k in range(n_emp)]
    routable_emps = [k for k, (_, ext, active) in enumerate(employees) if active and ext]
    blocked = [k for k, (_, _, active) in enumerate(employees) if not active]
    info = DatasetInfo(path=path, clients=clients, employees=n_emp, phones=n_phones)
    info.routed_employees = [(employees[k][0], str(employees[k][1])) for k in routable_emps]
    sample_p = min(1.0, samples / n_phones) if samples else 0.0
    expected: dict[str, str | None] = {}
    dumps = orjson.dumps
    with path.open("wb") as f:
        for k, (eid, ext, active) in enumerate(employees):
            f.write(
                dumps(
                    {
                        "type": "employee",
                        "id": eid,
                        "name": f"Employee {k}",
                        "extension": ext,
                        "email": f"e{k}@bench.example",
                        "active": active,
                    }
                )
                + b"\n"
            )
        for j in range(clients):
            start = j + (j + 1) // 2
            canon = [f"79{numbers[start]:09d}"]
            if j % 2 == 0:
                canon.append(f"79{numbers[start + 1]:09d}")
            shares = j % _SHARE_EVERY == 7 and j + _SHARE_OFFSET < clients
            if shares:
                other = j + _SHARE_OFFSET
                canon.append(f"79{numbers[other + (other + 1) // 2]:09d}")
            manager = (j * 7919 + rng.randrange(n_emp)) % n_emp
            responsibles: list[dict[str, str]] = []
            roll = rng.random()
            if roll < 0.05 and j > 0:
                responsibles.append({"type": "client", "id": str(_CLIENT_ID_BASE + j - 1)})
            elif roll < 0.10 and blocked:
                responsibles.append({"type": "employee", "id": employees[rng.choice(blocked)][0]})
            responsibles.append({"type": "employee", "id": employees[manager][0]})
            if roll > 0.99:
                extra = employees[rng.choice(routable_emps)][0]
                responsibles.append({"type": "employee", "id": extra})
            decision = _decide(responsibles, employees)
            written = [_fmt(c, (j + n) % 3) for n, c in enumerate(canon)]
            cid = str(_CLIENT_ID_BASE + j)
            f.write(
                dumps(
                    {
                        "type": "client",
                        "id": cid,
                        "kind": "human",
                        "name": f"Client {j}",
                        "phones": written,
                        "responsibles": responsibles,
                    }
                )
                + b"\n"
            )
            if collect_expected:
                for c in canon:
                    expected.setdefault(c, decision)
                if (
                    decision is not None
                    and len(responsibles) == 1
                    and not shares
                    and j % _SHARE_EVERY != 7 + _SHARE_OFFSET
                    and len(info.freshness) < 1000
                    and rng.random() < 0.05
                ):
                    info.freshness.append(
                        FreshnessCandidate(client_id=cid, number=canon[0], extension=decision)
                    )
            if sample_p:
                for w, c in zip(written, canon, strict=True):
                    if rng.random() < sample_p:
                        # half as written in the CRM, half as the PBX sends it
                        info.samples.append(w if rng.random() < 0.5 else c)
    if collect_expected:
        info.expected = {c: e for c, e in expected.items() if e is not None}
        info.routable = sorted(info.expected)
    return info


def _decide(
    responsibles: list[dict[str, str]], employees: list[tuple[str, str | None, bool]]
) -> str | None:
    """The rules: the first responsible that is an active employee; its extension or none."""
    for r in responsibles:
        if r["type"] != "employee":
            continue
        k = int(r["id"]) - _EMPLOYEE_ID_BASE
        _, ext, active = employees[k]
        if active:
            return ext
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallPlan:
    numbers: list[str]  # from.number of each call, as the PBX sends it
    expected: list[str | None]  # the extension each call must reach, None: not routed


def plan_calls(
    info: DatasetInfo, n: int, *, seed: int, known_share: float, fixed_route: str | None = None
) -> CallPlan:
    """``n`` callers: ``known_share`` of them clients spread over the whole data set,
    the rest numbers nobody has. ``fixed_route``: every call expects that extension
    (the floor routes everything without a lookup)."""
    rng = random.Random(seed)
    numbers: list[str] = []
    expected: list[str | None] = []
    routable = info.routable
    if not routable:
        raise ValueError("the data set has no routable number")
    for _ in range(n):
        if rng.random() < known_share:
            number = routable[rng.randrange(len(routable))]
            numbers.append(number)
            expected.append(info.expected[number])
        else:
            numbers.append(f"7495{rng.randrange(10**7):07d}")
            expected.append(None)
    if fixed_route is not None:
        expected = [fixed_route] * n
    return CallPlan(numbers=numbers, expected=expected)

"""The one-query SQL decision and the in-memory index agree, and both follow PROTOCOLS §4."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from cache.loader import load_account_index
from lookup.phones import phone_key
from lookup.rules import (
    BUSY,
    NEXT_FREE,
    NO_ACTIVE_RESPONSIBLE,
    NO_CLIENT,
    NO_EXTENSION,
    Decision,
    FoundBy,
)
from lookup.sql_lookup import decide_sql
from tests.conftest import load_records


@dataclass
class DataSet:
    records: list[dict[str, Any]] = field(default_factory=list)
    keys: set[int] = field(default_factory=set)  # every number worth asking about
    named: dict[str, int] = field(default_factory=dict)  # crafted cases: name -> number

    def employee(self, crm_id: str, extension: str | None, active: bool = True) -> None:
        rec: dict[str, Any] = {"type": "employee", "id": crm_id, "name": f"E{crm_id}",
                               "active": active}
        if extension is not None:
            rec["extension"] = extension
        self.records.append(rec)

    def client(self, crm_id: str, keys: list[int], responsibles: list[tuple[str, str]],
               dropped: bool = False, rng: random.Random | None = None) -> None:
        self.records.append({
            "type": "client", "id": crm_id, "name": f"C{crm_id}", "dropped": dropped,
            "phones": [_written(k, rng) for k in keys],
            "responsibles": [{"type": t, "id": i} for t, i in responsibles],
        })
        self.keys.update(keys)


def _written(key: int, rng: random.Random | None) -> str:
    """A Russian number in one of its written forms."""
    s = str(key)[1:]
    forms = [f"+7 ({s[:3]}) {s[3:6]}-{s[6:8]}-{s[8:]}", f"8 {s[:3]} {s[3:6]}-{s[6:8]}-{s[8:]}",
             f"7{s}", s]
    return forms[0] if rng is None else rng.choice(forms)


def expected_decision(records: list[dict[str, Any]], key: int,
                      busy: frozenset[str] = frozenset()) -> Decision:
    """PROTOCOLS §4 written out plainly, as the reference both lookups must match;
    with ``busy`` (extensions on a call), as ``skip_busy_responsible`` has it."""
    employees = {r["id"]: r for r in records if r["type"] == "employee"}
    clients = {r["id"]: r for r in records if r["type"] == "client"}  # last line wins
    number = str(key)
    owners = [c for c in clients.values()
              if not c.get("dropped") and key in {phone_key(p) for p in c["phones"]}]
    if not owners:
        return Decision(number, NO_CLIENT)
    first = min(owners, key=lambda c: int(c["id"]))
    busy_ones = []
    for r in first["responsibles"]:
        if r["type"] != "employee":
            continue
        e = employees.get(r["id"])
        if e is None or not e.get("active", True):
            continue
        if not e.get("extension"):
            return Decision(number, NO_EXTENSION, first["id"], e["id"])
        if e["extension"] in busy:
            busy_ones.append(e)
            continue
        if busy_ones:
            return FoundBy(NEXT_FREE, number, None, first["id"], e["id"], e["extension"])
        return Decision(number, None, first["id"], e["id"], e["extension"])
    if busy_ones:
        return Decision(number, BUSY, first["id"], busy_ones[0]["id"])
    return Decision(number, NO_ACTIVE_RESPONSIBLE, first["id"])


def crafted(ds: DataSet) -> None:
    """One number per rule, so every rule is covered whatever the random part holds."""
    ds.employee("501", "201")
    ds.employee("502", "202")
    ds.employee("503", "203", active=False)
    ds.employee("504", None)
    ds.employee("505", "")
    base = 78000000000
    cases: list[tuple[str, list[tuple[str, list[tuple[str, str]], bool]]]] = [
        ("nine_beats_ten", [("10", [("employee", "501")], False),
                            ("9", [("employee", "502")], False)]),
        ("client_responsible_skipped", [("100", [("client", "9"), ("employee", "501")], False)]),
        ("group_responsible_skipped", [("101", [("group", "77"), ("employee", "502")], False)]),
        ("inactive_skipped", [("102", [("employee", "503"), ("employee", "501")], False)]),
        ("unknown_employee_skipped", [("103", [("employee", "8888"), ("employee", "502")],
                                       False)]),
        ("no_extension_not_next", [("104", [("employee", "504"), ("employee", "501")], False)]),
        ("empty_extension_not_next", [("105", [("employee", "505"), ("employee", "501")],
                                       False)]),
        ("no_responsibles", [("106", [], False)]),
        ("no_employee_responsibles", [("107", [("client", "9"), ("employee", "503"),
                                               ("employee", "8888")], False)]),
        ("dropped_first_ignored", [("1", [("employee", "501")], True),
                                   ("2", [("employee", "502")], False)]),
        ("only_dropped", [("3", [("employee", "501")], True)]),
        ("first_no_active_second_routed", [("20", [("employee", "503")], False),
                                           ("21", [("employee", "501")], False)]),
    ]
    for n, (name, owners) in enumerate(cases):
        key = base + n
        ds.named[name] = key
        for crm_id, responsibles, dropped in owners:
            ds.client(crm_id, [key], responsibles, dropped)
    ds.named["unknown"] = base + 999
    ds.keys.add(base + 999)


def generated(seed: int, clients: int = 400) -> DataSet:
    rng = random.Random(seed)
    ds = DataSet()
    crafted(ds)
    employee_ids = [str(1000 + i) for i in range(30)]
    for crm_id in employee_ids:
        ds.employee(crm_id, rng.choice([f"3{crm_id[-2:]}", f"4{crm_id[-2:]}", None, ""]),
                    active=rng.random() < 0.75)
    unknown_ids = ["9001", "9002", "9003"]
    pool = sorted({79000000000 + rng.randrange(10**9) for _ in range(220)})
    ids: set[int] = set()
    while len(ids) < clients:
        ids.add(rng.choice([rng.randrange(200, 1000), rng.randrange(1000, 10**5),
                            rng.randrange(10**5, 10**9)]))
    client_ids = sorted(ids)
    for client_id in client_ids:
        responsibles: list[tuple[str, str]] = []
        for _ in range(rng.randrange(0, 5)):
            roll = rng.random()
            if roll < 0.6:
                responsibles.append(("employee", rng.choice(employee_ids)))
            elif roll < 0.7:
                responsibles.append(("employee", rng.choice(unknown_ids)))
            elif roll < 0.9:
                responsibles.append(("client", str(rng.choice(client_ids))))
            else:
                responsibles.append(("group", "1"))
        keys = rng.sample(pool, rng.randrange(1, 4))
        ds.client(str(client_id), keys, responsibles, dropped=rng.random() < 0.1, rng=rng)
    ds.keys.update(79000000000 + rng.randrange(10**9) for _ in range(20))  # mostly unknown
    return ds


async def _account_id(db: asyncpg.Connection) -> int:
    account_id: int = await db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    return account_id


async def test_sql_and_index_agree_on_every_number_of_a_generated_data_set(
    dsn: str, db: asyncpg.Connection
) -> None:
    ds = generated(seed=42)
    await load_records(dsn, ds.records)
    account_id = await _account_id(db)
    index = await load_account_index(db, account_id)
    outcomes: Counter[str] = Counter()
    for key in sorted(ds.keys):
        by_sql = await decide_sql(db, account_id, key)
        by_index = index.decide(str(key))
        expected = expected_decision(ds.records, key)
        assert by_sql == expected, key
        assert by_index == expected, key
        outcomes[expected.reason or "routed"] += 1
    assert set(outcomes) == {"routed", NO_CLIENT, NO_ACTIVE_RESPONSIBLE, NO_EXTENSION}
    shared = Counter(k for r in ds.records if r["type"] == "client" and not r["dropped"]
                     for k in {_key(p) for p in r["phones"]})
    assert sum(1 for n in shared.values() if n > 1) >= 50  # many numbers with several clients


def _key(written: str) -> int:
    key = phone_key(written)
    assert key is not None
    return key


async def test_each_routing_rule_gives_the_same_decision_in_sql_and_index(
    dsn: str, db: asyncpg.Connection
) -> None:
    ds = DataSet()
    crafted(ds)
    await load_records(dsn, ds.records)
    account_id = await _account_id(db)
    index = await load_account_index(db, account_id)
    want = {
        "nine_beats_ten": ("9", "502", "202", None),
        "client_responsible_skipped": ("100", "501", "201", None),
        "group_responsible_skipped": ("101", "502", "202", None),
        "inactive_skipped": ("102", "501", "201", None),
        "unknown_employee_skipped": ("103", "502", "202", None),
        "no_extension_not_next": ("104", "504", None, NO_EXTENSION),
        "empty_extension_not_next": ("105", "505", None, NO_EXTENSION),
        "no_responsibles": ("106", None, None, NO_ACTIVE_RESPONSIBLE),
        "no_employee_responsibles": ("107", None, None, NO_ACTIVE_RESPONSIBLE),
        "dropped_first_ignored": ("2", "502", "202", None),
        "only_dropped": (None, None, None, NO_CLIENT),
        "first_no_active_second_routed": ("20", None, None, NO_ACTIVE_RESPONSIBLE),
        "unknown": (None, None, None, NO_CLIENT),
    }
    assert set(want) == set(ds.named)
    for name, key in ds.named.items():
        by_sql = await decide_sql(db, account_id, key)
        by_index = index.decide_key(key)
        got = (by_sql.client_id, by_sql.employee_id, by_sql.extension, by_sql.reason)
        assert got == want[name], name
        assert by_index == by_sql, name


async def test_sql_and_index_pass_over_the_same_busy_employees(
    dsn: str, db: asyncpg.Connection
) -> None:
    ds = generated(seed=7)
    await load_records(dsn, ds.records)
    account_id = await _account_id(db)
    index = await load_account_index(db, account_id)
    extensions = sorted({r["extension"] for r in ds.records
                         if r["type"] == "employee" and r.get("extension")})
    rng = random.Random(3)
    outcomes: Counter[str] = Counter()
    for round_ in range(3):
        busy = frozenset(rng.sample(extensions, len(extensions) // (2 + round_)))
        for key in sorted(ds.keys):
            expected = expected_decision(ds.records, key, busy)
            assert await decide_sql(db, account_id, key, busy) == expected, key
            assert index.decide_key(key, busy) == expected, key
            outcomes[expected.via or expected.reason or "routed"] += 1
    assert {BUSY, NEXT_FREE, "routed", NO_EXTENSION} <= set(outcomes)


async def test_busy_responsibles_are_passed_over_in_the_crm_order(
    dsn: str, db: asyncpg.Connection
) -> None:
    ds = DataSet()
    for crm_id, extension, active in (("1", "101", True), ("2", "102", True),
                                      ("3", "103", False), ("4", None, True),
                                      ("5", "105", True)):
        ds.employee(crm_id, extension, active)
    ds.client("10", [79160000001], [("employee", "1"), ("employee", "3"), ("client", "11"),
                                    ("employee", "2"), ("employee", "5")])
    ds.client("11", [79160000002], [("employee", "1"), ("employee", "4"), ("employee", "2")])
    ds.client("12", [79160000003], [("employee", "3")])
    await load_records(dsn, ds.records)
    account_id = await _account_id(db)
    index = await load_account_index(db, account_id)
    cases = [
        (79160000001, set(), Decision("79160000001", None, "10", "1", "101")),
        (79160000001, {"101"}, FoundBy(NEXT_FREE, "79160000001", None, "10", "2", "102")),
        (79160000001, {"101", "102"}, FoundBy(NEXT_FREE, "79160000001", None, "10", "5", "105")),
        (79160000001, {"101", "102", "105"}, Decision("79160000001", BUSY, "10", "1")),
        (79160000001, {"102", "999"}, Decision("79160000001", None, "10", "1", "101")),
        # the next active one has no extension: as always, nobody else is tried
        (79160000002, {"101"}, Decision("79160000002", NO_EXTENSION, "11", "4")),
        (79160000003, {"103"}, Decision("79160000003", NO_ACTIVE_RESPONSIBLE, "12")),
        (79169999999, {"101"}, Decision("79169999999", NO_CLIENT)),
    ]
    for key, busy, want in cases:
        assert index.decide_key(key, busy) == want, (key, busy)
        assert await decide_sql(db, account_id, key, busy) == want, (key, busy)
    assert index.decide_key(79160000001, {"101"}).to_json() == {
        "number": "79160000001", "client_id": "10", "employee_id": "2", "extension": "102",
        "via": "next_free"}

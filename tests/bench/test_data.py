from __future__ import annotations

from pathlib import Path

import orjson

from bench.data import plan_calls, write_dataset
from bench.floor import _is_trigger
from bench.loadgen import StepSpec, _build_requests
from mango.events import CallEvent, check_fields
from mango.signing import verify


def test_dataset_is_deterministic_and_follows_the_rules(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a.jsonl", clients=400, seed=3)
    b = write_dataset(tmp_path / "b.jsonl", clients=400, seed=3)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert a.expected == b.expected
    assert a.phones == 600
    lines = [orjson.loads(x) for x in (tmp_path / "a.jsonl").read_bytes().splitlines()]
    employees = {x["id"]: x for x in lines if x["type"] == "employee"}
    clients = [x for x in lines if x["type"] == "client"]
    assert len(clients) == 400
    # recompute: the smallest client id with the number, its first active employee
    owner: dict[str, dict[str, object]] = {}
    for c in sorted(clients, key=lambda c: int(c["id"])):
        for raw in c["phones"]:
            digits = "".join(ch for ch in raw if ch.isdigit())
            canon = "7" + digits[1:]
            owner.setdefault(canon, c)
    for number, ext in a.expected.items():
        c = owner[number]
        first = next(employees[r["id"]] for r in c["responsibles"]  # type: ignore[attr-defined]
                     if r["type"] == "employee" and employees[r["id"]]["active"])
        assert first["extension"] == ext
    shared = [n for n in owner if sum(n in ["7" + "".join(ch for ch in p if ch.isdigit())[1:]
                                            for p in c["phones"]] for c in clients) > 1]
    assert shared  # some numbers are held by two clients


def test_plan_calls_mixes_known_and_unknown(tmp_path: Path) -> None:
    info = write_dataset(tmp_path / "d.jsonl", clients=1000, seed=1)
    plan = plan_calls(info, 5000, seed=9, known_share=0.9)
    known = sum(1 for e in plan.expected if e is not None)
    assert 0.87 < known / 5000 < 0.93
    assert all(n in info.expected for n, e in zip(plan.numbers, plan.expected, strict=True) if e)
    assert all(n.startswith("7495") for n, e in zip(plan.numbers, plan.expected, strict=True)
               if e is None)
    floor = plan_calls(info, 10, seed=9, known_share=0.9, fixed_route="100")
    assert floor.expected == ["100"] * 10


def test_prebuilt_requests_are_signed_triggers() -> None:
    spec = StepSpec(host="127.0.0.1", port=1, api_key="k", salt="s", rate=10, seconds=0.2,
                    connected_s=0.1, end_s=1.0, numbers=["79160000001", "74950000002"],
                    line_number="74950000000", call_prefix="x-")
    built = _build_requests(spec)
    assert len(built) == 8
    from urllib.parse import parse_qs

    for (kind, _i), data in built.items():
        head, body = data.split(b"\r\n\r\n", 1)
        assert f"Content-Length: {len(body)}".encode() in head
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        assert verify("k", form["json"], "s", form["sign"])
        event = orjson.loads(form["json"])
        assert _is_trigger(event) is (kind == 0)


def test_prebuilt_requests_pass_the_strict_event_model() -> None:
    spec = StepSpec(host="127.0.0.1", port=1, api_key="k", salt="s", rate=10, seconds=0.2,
                    connected_s=0.1, end_s=1.0, numbers=["79160000001"],
                    line_number="74950000000", call_prefix="x-")
    from urllib.parse import parse_qs

    kinds = []
    for data in _build_requests(spec).values():
        head, body = data.split(b"\r\n\r\n", 1)
        path = head.split(b" ", 2)[1].decode()
        event = orjson.loads(parse_qs(body.decode())["json"][0])
        if path == "/mango/events/call":
            CallEvent(event)  # BadRequest if the service would refuse it
        else:
            assert path == "/mango/events/summary"
            assert check_fields("summary", event) == ("x-e0", None)
        kinds.append(path)
    assert sorted(kinds) == ["/mango/events/call"] * 3 + ["/mango/events/summary"]

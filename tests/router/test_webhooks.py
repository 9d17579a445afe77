"""PBX notifications: signatures, malformed input, the journal, repeats and order."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
import orjson
import pytest

from emulators.pbx import PbxCaller
from mango.signing import sign
from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED


async def journal(dsn: str) -> list[asyncpg.Record]:
    con = await asyncpg.connect(dsn)
    try:
        return await con.fetch("SELECT * FROM call_events ORDER BY id")
    finally:
        await con.close()


async def test_valid_event_is_journaled_before_the_answer(service: Service) -> None:
    status, body = await service.event("events/call", call_event("e1", "79990000001"))
    assert (status, orjson.loads(body)) == (200, {"result": 1000})
    rows = await journal(service.dsn)  # read right after the 200: no waiting
    assert [(r["kind"], r["entry_id"], r["call_state"]) for r in rows] == [
        ("call", "e1", "Appeared")]
    assert orjson.loads(rows[0]["payload"])["from"] == {"number": "79990000001"}


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("events/summary", {"entry_id": "e1", "call_direction": 1, "entry_result": 1,
                            "create_time": 1700000000, "talk_time": 0}),
        ("events/recording", {"entry_id": "e1", "recording_id": "r1"}),
        ("events/dtmf", {"entry_id": "e1", "dtmf": "1"}),
        ("result/route", {"command_id": "c1", "result": 1000}),
    ],
)
async def test_every_notification_kind_is_accepted_and_journaled(
    service: Service, kind: str, payload: dict[str, Any]
) -> None:
    status, _ = await service.event(kind, payload)
    assert status == 200
    rows = await journal(service.dsn)
    assert len(rows) == 1
    expected = kind.split("/")[-1] if kind.startswith("events/") else "result"
    assert rows[0]["kind"] == expected


async def test_ping_answers(service: Service) -> None:
    status, _ = await service.event("ping", {})
    assert status == 200


async def test_bad_sign_is_refused_and_nothing_is_stored(service: Service) -> None:
    assert service.client.session is not None
    forged = PbxCaller(service.client.session, str(service.client.make_url("/mango")),
                       api_key="test-key", salt="wrong-salt")
    status, _ = await forged.post("events/call", call_event("e1", ROUTED))
    assert status == 403
    await service.pbx.wait_routes(1, within=0.3)
    assert service.pbx.routes() == []
    assert await journal(service.dsn) == []


async def test_unknown_key_is_refused_like_a_bad_sign(service: Service) -> None:
    assert service.client.session is not None
    stranger = PbxCaller(service.client.session, str(service.client.make_url("/mango")),
                         api_key="other-key", salt="test-salt")
    status, body = await stranger.post("events/call", call_event("e1", ROUTED))
    assert status == 403
    assert "sign" in orjson.loads(body)["error"]
    assert await journal(service.dsn) == []


def _form(raw: str) -> dict[str, str]:
    return {"vpbx_api_key": "test-key", "sign": sign("test-key", raw, "test-salt"), "json": raw}


MALFORMED: list[tuple[str, Any]] = [
    ("no-fields", {}),
    ("no-json", {"vpbx_api_key": "test-key", "sign": "x"}),
    ("not-json", _form("{not json")),
    ("json-array", _form("[1, 2]")),
    ("json-string", _form('"text"')),
    ("no-entry", _form(orjson.dumps({"call_id": "c", "call_state": "Appeared"}).decode())),
    ("bad-state", _form(orjson.dumps({**call_event("e", ROUTED), "call_state": "Ringing"})
                        .decode())),
    ("from-not-object", _form(orjson.dumps({**call_event("e", ROUTED), "from": "791"})
                              .decode())),
    ("seq-not-number", _form(orjson.dumps({**call_event("e", ROUTED), "seq": "first"})
                             .decode())),
    ("seq-huge", _form(orjson.dumps(call_event("e", ROUTED)).decode()
                       .replace('"seq":1', '"seq":' + "9" * 30))),
    ("seq-above-bigint", _form(orjson.dumps({**call_event("e", ROUTED), "seq": 2**62})
                               .decode())),
    ("entry-is-list", _form(orjson.dumps({**call_event("e", ROUTED), "entry_id": [1]})
                            .decode())),
    ("state-is-list", _form(orjson.dumps({**call_event("e", ROUTED), "call_state": ["x"]})
                            .decode())),
    ("entry-too-long", _form(orjson.dumps({**call_event("e", ROUTED), "entry_id": "e" * 9000})
                             .decode())),
    ("number-too-long", _form(orjson.dumps({**call_event("e", ROUTED),
                                            "from": {"number": "7" * 12000}}).decode())),
    ("nul-char", _form(orjson.dumps({**call_event("e", ROUTED), "entry_id": "a\u0000b"})
                       .decode())),
]


@pytest.mark.parametrize(("name", "form"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_event_gets_400_with_a_reason(
    service: Service, name: str, form: dict[str, str]
) -> None:
    resp = await service.client.post("/mango/events/call", data=form)
    assert resp.status == 400, name
    assert (await resp.json())["error"]
    assert await journal(service.dsn) == []


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("events/summary", {"call_direction": 1}),
        ("events/summary", {"entry_id": "e1", "entry_result": "yes"}),
        ("result/route", {"command_id": "c1"}),
        ("events/recording", {"entry_id": {"a": 1}}),
    ],
)
async def test_malformed_other_notifications_get_400(
    service: Service, kind: str, payload: dict[str, Any]
) -> None:
    status, body = await service.event(kind, payload)
    assert status == 400
    assert orjson.loads(body)["error"]


@pytest.fixture
async def routing(service_factory: ServiceFactory, dsn: str) -> Service:
    """The app with the CRM data loaded, so a trigger for ``ROUTED`` is routed; the PBX
    emulator posts no callbacks, so the journal holds only what a test posts."""
    await load_records(dsn, ALL)
    svc = await service_factory()
    svc.pbx.callback_url = None
    return svc


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with the field at ``path`` (``seq``, ``from.number``) set to ``value``."""
    out = orjson.loads(orjson.dumps(body))
    *parents, key = path.split(".")
    obj = out
    for parent in parents:
        obj = obj.setdefault(parent, {})
    obj[key] = value
    assert isinstance(out, dict)
    return out


WRONGLY_TYPED_CALL: list[tuple[str, Any, str]] = [
    ("seq", "1", "seq must be a number"),
    ("seq", True, "seq must be a number"),
    ("seq", 1.0, "seq must be a whole number"),
    ("entry_id", 123, "entry_id must be a string"),
    ("call_id", 5, "call_id must be a string"),
    ("from.number", int(ROUTED), "from.number must be a string"),
    ("from.extension", 101, "from.extension must be a string"),
    ("from.taken_from_call_id", 7, "from.taken_from_call_id must be a string"),
    ("to.extension", 101, "to.extension must be a string"),
    ("to.number", 74951112233, "to.number must be a string"),
    ("to.line_number", 74951112233, "to.line_number must be a string"),
    ("to.acd_group", 3, "to.acd_group must be a string"),
    ("timestamp", "1700000000", "timestamp must be a number"),
    ("disconnect_reason", "0", "disconnect_reason must be a number"),
    ("call_state", 1, "call_state must be a string"),
    ("location", 0, "location must be a string"),
    ("command_id", 42, "command_id must be a string"),
    ("from.was_transferred", "yes", "from.was_transferred must be a boolean"),
    ("to.was_transferred", 1, "to.was_transferred must be a boolean"),
    ("to", ["74951112233"], "to must be an object"),
]


@pytest.mark.parametrize(("path", "value", "reason"), WRONGLY_TYPED_CALL,
                         ids=[f"{p}={v!r}" for p, v, _ in WRONGLY_TYPED_CALL])
async def test_wrongly_typed_call_field_gets_400_naming_it_and_is_neither_journaled_nor_routed(
    routing: Service, path: str, value: Any, reason: str
) -> None:
    bad = _with(call_event("bad", ROUTED), path, value)
    status, body = await routing.event("events/call", bad)
    assert (status, orjson.loads(body)) == (400, {"error": reason})
    # a well-typed trigger after it is routed and journaled: the app is live, and alone
    status, _ = await routing.event("events/call", call_event("ok", ROUTED))
    assert status == 200
    await routing.pbx.wait_routes(2, within=0.3)
    assert [r.payload["call_id"] for r in routing.pbx.routes()] == ["ok-ivr"]
    assert [(r["kind"], r["entry_id"]) for r in await journal(routing.dsn)] == [("call", "ok")]


WRONGLY_TYPED_OTHER: list[tuple[str, dict[str, Any], str, Any, str]] = [
    ("events/summary", {"entry_id": "e1", "call_direction": 1}, "call_direction", "1",
     "call_direction must be a number"),
    ("events/summary", {"entry_id": "e1"}, "entry_result", True,
     "entry_result must be a number"),
    ("events/summary", {"entry_id": "e1"}, "create_time", 1.5,
     "create_time must be a whole number"),
    ("events/summary", {"entry_id": "e1"}, "talk_time", "0", "talk_time must be a number"),
    ("events/summary", {"entry_id": "e1"}, "entry_id", 5, "entry_id must be a string"),
    ("events/summary", {"entry_id": "e1"}, "line_number", 74951112233,
     "line_number must be a string"),
    ("events/summary", {"entry_id": "e1"}, "from.number", int(ROUTED),
     "from.number must be a string"),
    ("result/route", {"command_id": "c1", "result": 1000}, "result", "1000",
     "result must be a number"),
    ("result/route", {"command_id": "c1", "result": 1000}, "result", True,
     "result must be a number"),
    ("result/route", {"command_id": "c1", "result": 1000}, "command_id", 1,
     "command_id must be a string"),
    ("events/recording", {"recording_id": "r1"}, "entry_id", 5, "entry_id must be a string"),
    ("events/dtmf", {"dtmf": "1"}, "entry_id", 5, "entry_id must be a string"),
    ("events/summary", {"entry_id": "e1"}, "entry_id", "", "entry_id must not be empty"),
    ("events/recording", {"recording_id": "r1"}, "entry_id", "", "entry_id must not be empty"),
    ("events/dtmf", {"dtmf": "1"}, "entry_id", "", "entry_id must not be empty"),
]


@pytest.mark.parametrize(("kind", "base", "path", "value", "reason"), WRONGLY_TYPED_OTHER,
                         ids=[f"{k}:{p}={v!r}" for k, _, p, v, _ in WRONGLY_TYPED_OTHER])
async def test_wrongly_typed_field_of_other_notifications_gets_400_naming_it_and_is_not_journaled(
    service: Service, kind: str, base: dict[str, Any], path: str, value: Any, reason: str
) -> None:
    status, body = await service.event(kind, _with(base, path, value))
    assert (status, orjson.loads(body)) == (400, {"error": reason})
    assert await journal(service.dsn) == []


async def test_unknown_fields_of_any_type_and_nulls_are_ignored(routing: Service) -> None:
    extra: dict[str, Any] = {"sip_call_id": 12345, "dct": {"number": "", "type": 0},
                             "transfer": None, "task_id": 3.5, "callback_initiator": True,
                             "hold": [1, "x"], "timestamp": None, "command_id": None}
    call = call_event("e1", ROUTED, **extra)
    call["from"] = {"number": ROUTED, "extension": None, "was_transferred": False,
                    "hold_initiator": 7, "whatever": {"a": [1]}}
    call["to"]["was_transferred"] = True
    summary = {"entry_id": "e1", "call_direction": 1, "entry_result": None, "recall": "x",
               "create_time": 1700000000, "from": {"number": ROUTED, "extra": 1.5},
               "to": None, "sip_call_id": 7, "talk_time": 0}
    result = {"command_id": "c1", "result": 1000, "details": {"code": "1000"}, "extra": 2.5}
    status, body = await routing.event("events/call", call)
    assert (status, orjson.loads(body)) == (200, {"result": 1000})
    routes = await routing.pbx.wait_routes(1)  # before the summary, which ends the call
    assert [r.payload["call_id"] for r in routes] == ["e1-ivr"]
    for kind, payload in [("events/summary", summary), ("result/route", result)]:
        status, body = await routing.event(kind, payload)
        assert (status, orjson.loads(body)) == (200, {"result": 1000}), kind
    assert [r["kind"] for r in await journal(routing.dsn)] == ["call", "summary", "result"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=x", b"--x\r\nbroken"),
        ("application/x-www-form-urlencoded; charset=bogus", b"json=%7B%7D"),
        ("application/json", b"{}"),
        ("text/plain", b"vpbx_api_key=test-key"),
    ],
)
async def test_bodies_that_are_not_a_urlencoded_form_get_400(
    service: Service, content_type: str, body: bytes
) -> None:
    resp = await service.client.post("/mango/events/call", data=body,
                                      headers={"Content-Type": content_type})
    assert resp.status == 400
    assert (await resp.json())["error"]


async def test_a_row_the_database_refuses_does_not_hold_up_the_rows_behind_it(
    service: Service,
) -> None:
    app = service.client.app
    assert app is not None
    from lookup.journal import JournalEntry
    from router.keys import JOURNAL

    # An incompressible entry id past btree's row size limit: refused forever.
    poison = JournalEntry(1, "call", os.urandom(6000).hex(), "c", 1, "Appeared",
                          "ivr", "{}")
    app[JOURNAL].put_nowait(poison)
    status, _ = await service.event("events/call", call_event("after", "79990000001"))
    assert status == 200
    assert [r["entry_id"] for r in await journal(service.dsn)] == ["after"]


async def test_an_event_the_journal_cannot_store_gets_400_not_a_200_and_the_next_is_stored(
    service: Service,
) -> None:
    # Valid JSON that orjson reads (as 0.0) and PostgreSQL's jsonb refuses (numeric
    # underflow): answering 200 would tell the PBX it was kept when it was dropped.
    raw = orjson.dumps(call_event("tiny", "79990000001")).decode()[:-1] + ', "x": 1e-20000}'
    status, body = await service.event("events/call", raw)
    assert status == 400
    assert orjson.loads(body)["error"].startswith("json cannot be stored")
    status, _ = await service.event("events/call", call_event("after", "79990000001"))
    assert status == 200
    assert [r["entry_id"] for r in await journal(service.dsn)] == ["after"]


async def test_garbage_bodies_never_get_a_5xx(service: Service) -> None:
    bodies: list[bytes] = [b"", b"\xff\xfe", b"json=%ZZ", b"a=b&a=c", b"json=" + b"x" * 100_000,
                           b"vpbx_api_key=test-key&sign=&json=", b"\x00" * 64]
    for body in bodies:
        for path in ("/mango/events/call", "/mango/events/summary", "/mango/result/route",
                     "/mango/ping"):
            resp = await service.client.post(
                path, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert resp.status < 500, (path, body[:20], resp.status)


async def test_repeated_event_is_stored_once(service: Service) -> None:
    body = call_event("e1", "79990000001", seq=2, state="Connected", location="abonent")
    for _ in range(3):
        status, _ = await service.event("events/call", body)
        assert status == 200
    assert len(await journal(service.dsn)) == 1


async def test_events_out_of_order_are_all_kept_and_read_back_in_seq_order(
    service: Service,
) -> None:
    events = [call_event("e1", "79990000001", seq=s, state=st, location=loc)
              for s, st, loc in [(4, "Disconnected", "abonent"), (1, "Appeared", "ivr"),
                                 (3, "Connected", "abonent"), (2, "Disconnected", "ivr")]]
    await asyncio.gather(*(service.event("events/call", e) for e in events))
    con = await asyncpg.connect(service.dsn)
    try:
        seqs = [r["seq"] for r in await con.fetch(
            "SELECT seq FROM call_events WHERE entry_id = 'e1' ORDER BY seq")]
    finally:
        await con.close()
    assert seqs == [1, 2, 3, 4]


async def test_many_concurrent_events_are_all_journaled_in_few_round_trips(
    service: Service,
) -> None:
    events = [call_event(f"e{i}", "79990000001", state="Connected", location="abonent")
              for i in range(200)]
    results = await asyncio.gather(*(service.event("events/call", e) for e in events))
    assert all(status == 200 for status, _ in results)
    assert len(await journal(service.dsn)) == 200
    metrics = await (await service.client.get("/metrics")).text()
    count = next(line for line in metrics.splitlines()
                 if line.startswith("mango_router_journal_batch_size_count"))
    assert float(count.split()[-1]) < 200  # batched: fewer writes than events


async def test_unknown_notification_kind_is_404_and_not_stored(service: Service) -> None:
    status, _ = await service.event("events/bogus", call_event("e1", ROUTED))
    assert status == 404
    assert await journal(service.dsn) == []

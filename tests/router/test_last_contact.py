"""Call-backs to the last employee (``route_unknown_to_last_contact``) through the
real webhooks: a number no client has goes to whoever last talked to it, learned
from the shared journal whichever replicas a call's legs reached."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from automation.call_model import JournalEvent
from lookup.accounts import Account
from lookup.journal import JournalEntry, write_journal
from router.app import STATE_LISTENER
from router.keys import ACCOUNTS, CONTACTS, INDEXES, POOL
from tests.automation.calls import EntryWriter, answered, missed_in_ivr, outgoing
from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED, UNKNOWN
from tests.router.test_busy import settings_everywhere, until
from tests.router.test_routing import decisions

OPERATOR = {"Authorization": "Bearer operator-token"}
LINE = "74951112233"
ON = {"route_unknown_to_last_contact": {"enabled": True, "within_hours": 72}}


async def start(service_factory: ServiceFactory, dsn: str, count: int = 1,
                settings: dict[str, Any] | None = None) -> list[Service]:
    await load_records(dsn, ALL)
    services = [await service_factory() for _ in range(count)]
    settings = ON if settings is None else settings
    await settings_everywhere(services, settings)
    if settings.get("route_unknown_to_last_contact"):  # the journal's window read: what
        for svc in services:                         # comes next is heard, not read back
            assert await until(lambda svc=svc: loaded(svc))
    return services


def account_id(svc: Service) -> int:
    account: Account | None = svc.client.app[ACCOUNTS].by_name("default")
    assert account is not None
    return account.id


def knows(svc: Service, number: str, employee: str | None) -> bool:
    found: str | None = svc.client.app[CONTACTS].find(account_id(svc), int(number))
    return found == employee


def loaded(svc: Service) -> bool:
    book = svc.client.app[CONTACTS].book(account_id(svc))
    return book is not None and book.loaded


async def post(events: list[JournalEvent], *to: Service) -> None:
    """A call's notifications, each to the next of ``to`` in turn (several replicas
    behind a balancer)."""
    for i, event in enumerate(events):
        kind = "events/call" if event.kind == "call" else "events/summary"
        status, _ = await to[i % len(to)].event(kind, dict(event.payload))
        assert status == 200


def talked(entry: str, number: str, extensions: list[str], **kw: Any) -> list[JournalEvent]:
    w = EntryWriter(entry)
    answered(w, number, LINE, extensions, **kw)
    return w.events


def called_out(entry: str, extension: str, number: str, picked_up: bool) -> list[JournalEvent]:
    w = EntryWriter(entry)
    outgoing(w, extension, number, LINE, picked_up=picked_up)
    return w.events


async def callback(svc: Service, dsn: str, entry: str, count: int) -> asyncpg.Record:
    """The number calls back; its decision."""
    await svc.event("events/call", call_event(entry, UNKNOWN))
    rows = await decisions(dsn, count)
    [row] = [r for r in rows if r["entry_id"] == entry]
    return row


async def test_a_number_no_client_has_goes_to_the_employee_who_answered_it(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await post(talked("c1", UNKNOWN, ["102"]), svc)
    assert await until(lambda: knows(svc, UNKNOWN, "2"))
    row = await callback(svc, dsn, "back", 2)
    assert (row["outcome"], row["client_id"], row["employee_id"], row["extension"],
            row["via"]) == ("routed", None, "2", "102", "last_contact")
    routes = await svc.pbx.wait_routes(1)
    assert [r.payload["to_number"] for r in routes] == ["102"]
    body = await (await svc.client.get("/api/calls/back", headers=OPERATOR)).json()
    assert (body["decision"]["via"], body["decision"]["employee_id"]) == ("last_contact", "2")
    route = await svc.client.get("/route", params={"number": UNKNOWN}, headers=OPERATOR)
    assert (await route.json())["via"] == "last_contact"


async def test_with_the_setting_off_a_number_no_client_has_is_not_routed(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn, settings={})
    await post(talked("c1", UNKNOWN, ["102"]), svc)
    row = await callback(svc, dsn, "back", 2)
    assert (row["outcome"], row["via"]) == ("no_client", None)


async def test_the_last_of_several_employees_wins(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await post(talked("c1", UNKNOWN, ["101", "102"], transfers=1), svc)
    assert await until(lambda: knows(svc, UNKNOWN, "2"))
    await post(called_out("c2", "101", UNKNOWN, picked_up=False), svc)  # later: Anna called
    assert await until(lambda: knows(svc, UNKNOWN, "1"))
    row = await callback(svc, dsn, "back", 3)
    assert (row["outcome"], row["extension"]) == ("routed", "101")


async def test_a_missed_call_is_nobody_to_call_back_to(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    w = EntryWriter("c1")
    missed_in_ivr(w, UNKNOWN, LINE)
    await post(w.events, svc)
    row = await callback(svc, dsn, "back", 2)
    assert row["outcome"] == "no_client"


async def test_a_known_client_is_routed_to_its_responsible_whoever_talked_to_it(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await post(called_out("c1", "102", ROUTED, picked_up=True), svc)
    assert await until(lambda: knows(svc, ROUTED, "2"))
    await svc.event("events/call", call_event("back", ROUTED))
    assert [r.payload["to_number"] for r in await svc.pbx.wait_routes(1)] == ["101"]


async def test_legs_of_one_call_on_two_replicas_teach_both(
    service_factory: ServiceFactory, dsn: str
) -> None:
    first, second = await start(service_factory, dsn, count=2)
    await post(talked("c1", UNKNOWN, ["102"], summary=False), first, second)
    assert await until(lambda: knows(first, UNKNOWN, "2") and knows(second, UNKNOWN, "2"))
    for svc, entry in ((first, "back1"), (second, "back2")):
        await svc.event("events/call", call_event(entry, UNKNOWN))
    rows = await decisions(dsn, 3)
    assert sorted((r["entry_id"], r["outcome"], r["extension"]) for r in rows
                  if r["entry_id"].startswith("back")) == [
        ("back1", "routed", "102"), ("back2", "routed", "102")]


async def test_contacts_are_read_back_from_the_journal_after_a_restart(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn)
    await post(talked("c1", UNKNOWN, ["102"]), svc)
    assert await until(lambda: knows(svc, UNKNOWN, "2"))
    await svc.client.close()
    again = await service_factory()
    assert await until(lambda: loaded(again))
    assert knows(again, UNKNOWN, "2")
    row = await callback(again, dsn, "back", 2)
    assert (row["outcome"], row["extension"]) == ("routed", "102")


async def test_turning_the_setting_on_reads_the_window_from_the_journal(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn, settings={})
    await post(called_out("c1", "102", UNKNOWN, picked_up=True), svc)
    await settings_everywhere([svc], ON)
    assert await until(lambda: loaded(svc) and knows(svc, UNKNOWN, "2"))


async def test_a_contact_older_than_the_window_is_not_routed_to(
    service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection
) -> None:
    [svc] = await start(service_factory, dsn, settings={})
    await post(called_out("old", "102", UNKNOWN, picked_up=True), svc)
    await post(called_out("new", "101", "79990000002", picked_up=True), svc)  # journaled
    await db.execute("UPDATE call_events SET received_at = now() - interval '3 hours'"
                     " WHERE entry_id = 'old'")
    await settings_everywhere([svc], {"route_unknown_to_last_contact": {
        "enabled": True, "within_hours": 2}})
    assert await until(lambda: loaded(svc) and knows(svc, "79990000002", "1"))
    assert knows(svc, UNKNOWN, None)
    await settings_everywhere([svc], {"route_unknown_to_last_contact": {
        "enabled": True, "within_hours": 4}})  # a wider window reads the journal again
    assert await until(lambda: knows(svc, UNKNOWN, "2"))


async def test_a_busy_last_contact_is_not_called_when_busy_employees_are_passed_over(
    service_factory: ServiceFactory, dsn: str
) -> None:
    [svc] = await start(service_factory, dsn, settings={**ON, "skip_busy_responsible": True})
    await post(called_out("c1", "102", UNKNOWN, picked_up=True)[:2], svc)  # still talking
    assert await until(lambda: knows(svc, UNKNOWN, "2"))
    row = await callback(svc, dsn, "back", 2)
    assert (row["outcome"], row["employee_id"], row["via"]) == ("busy", "2", "last_contact")
    await svc.pbx.wait_routes(1, within=0.3)
    assert svc.pbx.routes() == []


async def test_a_last_contact_blocked_since_is_nobody(
    service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection
) -> None:
    [svc] = await start(service_factory, dsn)
    await post(called_out("c1", "102", UNKNOWN, picked_up=True), svc)
    assert await until(lambda: knows(svc, UNKNOWN, "2"))
    await db.execute("UPDATE employees SET active = false WHERE crm_id = '2'")
    index = svc.client.app[INDEXES].get(account_id(svc))
    assert index is not None
    assert await until(lambda: not index.employee("2").active)
    row = await callback(svc, dsn, "back", 2)
    assert (row["outcome"], row["via"]) == ("no_client", None)


async def test_a_contact_missed_while_the_listener_was_away_is_read_after_it_reconnects(
    service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection
) -> None:
    [svc] = await start(service_factory, dsn)
    # journaled by a replica whose announcement never came (as if said while away)
    events = called_out("c1", "102", UNKNOWN, picked_up=True)
    await write_journal(svc.client.app[POOL], [
        JournalEntry(account_id(svc), "call", e.payload["entry_id"], e.payload["call_id"],
                     e.payload["seq"], e.payload["call_state"], e.payload["location"],
                     orjson.dumps(e.payload).decode()) for e in events if e.kind == "call"])
    assert not knows(svc, UNKNOWN, "2")
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE application_name = $1", STATE_LISTENER)
    assert await until(lambda: knows(svc, UNKNOWN, "2"), within=5.0)

"""Every call-handling rule, for every value of its setting, through the real webhooks,
the real outbox and the Megaplan emulator as a real server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from automation.call_model import OPEN_SILENCE, SILENCE, JournalEvent
from emulators.megaplan_store import CT_EMPLOYEE, LINE_FIELD_NAME
from tests.automation import calls
from tests.automation.calls import EntryWriter
from tests.automation.conftest import Crm, CrmFactory, eventually

NEW = "79990001122"  # nobody in the emulated CRM has it
LINE = "74951112233"
DEAL = {"program_id": "1", "state_id": "2"}
MISSED_DEAL = {"program_id": "2", "state_id": "5"}


def created(crm: Crm) -> list[Any]:
    return [crm.mp.clients[c] for c in crm.mp.created_client_ids]


def deals(crm: Crm) -> list[dict[str, Any]]:
    return list(crm.mp.deals.values())


def until_answered(events: list[JournalEvent]) -> int:
    """How many events there are up to the first Connected of an employee's leg."""
    return next(i + 1 for i, e in enumerate(events) if e.kind == "call"
                and e.payload["call_state"] == "Connected" and e.payload["location"] == "abonent")


def known_client(crm: Crm) -> tuple[str, str]:
    """A client of the CRM with a phone (its id, the phone as digits)."""
    row = next(r for r in sorted(crm.mp.clients.values(), key=lambda r: int(r.id))
               if r.phones and not r.is_dropped and len(crm.mp.clients_by_phone(r.phones[0])) == 1)
    digits = "".join(ch for ch in row.phones[0] if ch.isdigit())
    return row.id, ("7" + digits[-10:])


# --- a new number, answered ------------------------------------------------------------
async def test_an_answered_call_from_a_new_number_makes_the_client_when_answered(
    crm: Crm,
) -> None:
    await crm.settings(accepted_incoming="client", source_line=True, phone_format="e164")
    w = EntryWriter("in-1")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    cut = until_answered(w.events)
    await crm.play(w.events[:cut])  # answered, not yet ended
    actions = await crm.settled("in-1", 1)
    assert [(a["action"], a["state"]) for a in actions] == [("create_client", "done")]
    [client] = created(crm)
    started = datetime.fromtimestamp(calls.T0 + 1, UTC).astimezone(ZoneInfo("Europe/Moscow"))
    assert client.name == f"Новый ({started:%H:%M %d.%m.%Y}, входящий вызов)"
    assert client.phones == ["+" + NEW]
    assert client.responsibles == [(CT_EMPLOYEE, crm.employee(0))]
    assert client.extra.get(LINE_FIELD_NAME) == LINE
    assert actions[0]["crm_id"] == client.id
    # in the index at once: the caller's next call goes to that employee
    assert await crm.routed_to(NEW, crm.employee(0)) == crm.employee(0)
    await crm.play(w.events[cut:])
    actions = await crm.settled("in-1", 2)
    assert [(a["action"], a["state"]) for a in actions] == [
        ("create_client", "done"), ("record_call", "done")]
    assert crm.mp.call_infos["in-1"]["type"] == "in"
    assert len(created(crm)) == 1


@pytest.mark.parametrize("phone_format", ["e164", "international", "national", "digits"])
async def test_the_phone_is_written_in_the_chosen_format(crm: Crm, phone_format: str) -> None:
    await crm.settings(accepted_incoming="client", phone_format=phone_format)
    w = EntryWriter("fmt")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await crm.settled("fmt", 2)
    [client] = created(crm)
    assert client.phones == [{"e164": "+79990001122", "international": "+7 999 000-11-22",
                              "national": "8 (999) 000-11-22",
                              "digits": "79990001122"}[phone_format]]


async def test_without_source_line_the_line_field_is_left_alone(crm: Crm) -> None:
    await crm.settings(accepted_incoming="client", source_line=False)
    w = EntryWriter("noline")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await crm.settled("noline", 2)
    assert LINE_FIELD_NAME not in created(crm)[0].extra


async def test_accepted_nothing_creates_nothing(crm: Crm) -> None:
    await crm.settings(accepted_incoming="nothing")
    w = EntryWriter("nothing")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await asyncio.sleep(0.5)
    assert await crm.actions("nothing") == []
    assert created(crm) == []


async def test_client_and_deal_makes_a_deal_with_the_answerer_as_manager(crm: Crm) -> None:
    await crm.settings(accepted_incoming="client_and_deal", accepted_deal=DEAL)
    w = EntryWriter("deal")
    calls.answered(w, NEW, LINE, [crm.ext(1)])
    await crm.play(w.events)
    actions = await crm.settled("deal", 3)
    assert [a["action"] for a in actions] == ["create_client", "create_deal", "record_call"]
    assert all(a["state"] == "done" for a in actions)
    [deal] = deals(crm)
    [client] = created(crm)
    assert deal["program"]["id"] == "1"
    assert deal["state"]["id"] == "2"
    assert deal["contractor"]["id"] == client.id
    assert deal["manager"]["id"] == crm.employee(1)


@pytest.mark.parametrize("update", [True, False])
async def test_a_transferred_call_ends_with_the_responsible_the_setting_says(
    crm: Crm, update: bool,
) -> None:
    await crm.settings(accepted_incoming="client", update_responsible_on_transfer=update)
    w = EntryWriter("xfer")
    calls.answered(w, NEW, LINE, [crm.ext(0), crm.ext(1)], transfers=1)
    await crm.play(w.events)
    actions = await crm.settled("xfer", 3 if update else 2)
    [client] = created(crm)
    expected = crm.employee(1) if update else crm.employee(0)
    assert client.responsibles == [(CT_EMPLOYEE, expected)]
    assert ("set_responsible" in [a["action"] for a in actions]) is update
    assert await crm.routed_to(NEW, expected) == expected


# --- a new number, missed ----------------------------------------------------------------
async def test_a_missed_call_makes_the_client_when_it_ends_for_the_first_employee_offered(
    crm: Crm,
) -> None:
    await crm.settings(missed_incoming="client_and_deal", missed_deal=MISSED_DEAL)
    w = EntryWriter("missed")
    calls.offered_and_missed(w, NEW, LINE, [crm.ext(2), crm.ext(0)])
    await crm.play(w.events[:-1])  # not ended yet: nothing
    await asyncio.sleep(0.5)
    assert await crm.actions("missed") == []
    await crm.play(w.events[-1:])
    actions = await crm.settled("missed", 3)
    assert [a["action"] for a in actions] == ["create_client", "create_deal", "record_call"]
    [client] = created(crm)
    assert client.responsibles == [(CT_EMPLOYEE, crm.employee(2))]
    [deal] = deals(crm)
    assert (deal["program"]["id"], deal["state"]["id"]) == ("2", "5")
    assert crm.mp.call_infos["missed"]["type"] == "miss"


@pytest.mark.parametrize(("enabled", "made"), [(True, True), (False, False)])
async def test_a_call_missed_in_the_voice_menu_makes_a_client_only_when_enabled(
    crm: Crm, enabled: bool, made: bool,
) -> None:
    await crm.settings(missed_incoming="client", missed_in_ivr={
        "enabled": enabled, "employee_id": crm.employee(1) if enabled else None})
    w = EntryWriter("ivr")
    calls.missed_in_ivr(w, NEW, LINE)
    await crm.play(w.events)
    if made:
        await crm.settled("ivr", 2)
        assert [c.responsibles for c in created(crm)] == [[(CT_EMPLOYEE, crm.employee(1))]]
    else:
        await asyncio.sleep(0.5)
        assert await crm.actions("ivr") == []
        assert created(crm) == []


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_call_missed_in_a_group_goes_to_the_setting_employee_or_the_first_offered(
    crm: Crm, enabled: bool,
) -> None:
    await crm.settings(missed_incoming="client", missed_in_group={
        "enabled": enabled, "employee_id": crm.employee(2) if enabled else None})
    w = EntryWriter("group")
    calls.to_group(w, NEW, LINE, [crm.ext(0), crm.ext(1)], "7")
    await crm.play(w.events)
    await crm.settled("group", 2)
    expected = crm.employee(2) if enabled else crm.employee(0)
    assert [c.responsibles for c in created(crm)] == [[(CT_EMPLOYEE, expected)]]


async def test_the_missed_call_flags_act_only_when_missed_calls_make_clients(crm: Crm) -> None:
    await crm.settings(missed_incoming="nothing",
                       missed_in_ivr={"enabled": True, "employee_id": crm.employee(1)})
    w = EntryWriter("ivr-off")
    calls.missed_in_ivr(w, NEW, LINE)
    await crm.play(w.events)
    await asyncio.sleep(0.5)
    assert await crm.actions("ivr-off") == []


# --- outgoing --------------------------------------------------------------------------------
@pytest.mark.parametrize("enabled", [True, False])
async def test_an_outgoing_call_to_a_new_number_makes_the_callers_client_at_its_start(
    crm: Crm, enabled: bool,
) -> None:
    await crm.settings(outgoing_create_client=enabled)
    w = EntryWriter("out")
    calls.outgoing(w, crm.ext(1), NEW, LINE, picked_up=True)
    await crm.play(w.events[:1])  # it started
    if not enabled:
        await crm.play(w.events[1:])
        await asyncio.sleep(0.5)
        assert await crm.actions("out") == []
        return
    await crm.settled("out", 1)
    [client] = created(crm)
    assert client.responsibles == [(CT_EMPLOYEE, crm.employee(1))]
    assert "исходящий вызов" in client.name
    await crm.play(w.events[1:])
    await crm.settled("out", 2)
    assert crm.mp.call_infos["out"]["type"] == "out"


# --- known clients --------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["answered", "missed", "outgoing"])
async def test_every_call_of_a_known_client_is_recorded_on_its_card(
    crm: Crm, scenario: str,
) -> None:
    _client_id, phone = known_client(crm)
    w = EntryWriter("known")
    if scenario == "answered":
        calls.answered(w, phone, LINE, [crm.ext(0)])
    elif scenario == "missed":
        calls.offered_and_missed(w, phone, LINE, [crm.ext(0)])
    else:
        calls.outgoing(w, crm.ext(0), phone, LINE, picked_up=True)
    await crm.play(w.events)
    actions = await crm.settled("known", 1)
    assert [(a["action"], a["state"]) for a in actions] == [("record_call", "done")]
    assert crm.mp.call_infos["known"]["type"] == {"answered": "in", "missed": "miss",
                                                  "outgoing": "out"}[scenario]
    assert created(crm) == []
    assert deals(crm) == []


@pytest.mark.parametrize(("answered", "deal"), [(True, DEAL), (False, MISSED_DEAL)])
async def test_always_deal_makes_a_deal_for_every_incoming_call_of_a_known_client(
    crm: Crm, answered: bool, deal: dict[str, str],
) -> None:
    client_id, phone = known_client(crm)
    await crm.settings(repeat_calls="always_deal", accepted_deal=DEAL, missed_deal=MISSED_DEAL)
    for n in range(2):
        w = EntryWriter(f"again-{n}")
        if answered:
            calls.answered(w, phone, LINE, [crm.ext(1)])
        else:
            calls.offered_and_missed(w, phone, LINE, [crm.ext(1)])
        await crm.play(w.events)
        await crm.settled(f"again-{n}", 2)
    made = deals(crm)
    assert len(made) == 2
    assert {(d["program"]["id"], d["state"]["id"]) for d in made} == {
        (deal["program_id"], deal["state_id"])}
    assert {d["contractor"]["id"] for d in made} == {client_id}
    if answered:  # the manager is who answered
        assert {d["manager"]["id"] for d in made} == {crm.employee(1)}


async def test_deal_if_none_open_makes_a_deal_only_while_the_client_has_no_open_one(
    crm: Crm,
) -> None:
    _client_id, phone = known_client(crm)
    await crm.settings(repeat_calls="deal_if_none_open", accepted_deal=DEAL,
                       missed_deal=MISSED_DEAL)
    for n in range(2):
        w = EntryWriter(f"open-{n}")
        calls.answered(w, phone, LINE, [crm.ext(0)])
        await crm.play(w.events)
        await crm.settled(f"open-{n}", 2)
    assert len(deals(crm)) == 1  # the first call's deal is still open
    second = await crm.actions("open-1")
    assert [(a["action"], a["note"]) for a in second if a["action"] == "create_deal"] == [
        ("create_deal", "the client has an open deal")]


async def test_record_only_makes_no_deal(crm: Crm) -> None:
    _client_id, phone = known_client(crm)
    await crm.settings(repeat_calls="record_only", accepted_deal=DEAL)
    w = EntryWriter("only")
    calls.answered(w, phone, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await crm.settled("only", 1)
    assert deals(crm) == []


async def test_a_recording_that_comes_later_is_added_to_the_recorded_call(crm: Crm) -> None:
    _client_id, phone = known_client(crm)
    w = EntryWriter("rec")
    calls.answered(w, phone, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await crm.settled("rec", 1)
    assert crm.mp.call_infos["rec"]["recordLinks"] == []
    w.recording("rec-42")
    await crm.play(w.events[-2:])
    await crm.settled("rec", 2)
    links = crm.mp.call_infos["rec"]["recordLinks"]
    assert len(links) == 1
    assert "/queries/recording/link/rec-42/play/test-key/" in links[0]
    assert crm.mp.applied["call_recorded"] == 1  # one call on the card, updated


# --- dry run -----------------------------------------------------------------------------------
async def test_dry_run_plans_and_records_every_action_and_writes_nothing(crm: Crm) -> None:
    await crm.settings(accepted_incoming="client_and_deal", accepted_deal=DEAL, dry_run=True)
    w = EntryWriter("dry")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    actions = await crm.settled("dry", 3)
    assert [(a["action"], a["state"]) for a in actions] == [
        ("create_client", "dry_run"), ("create_deal", "dry_run"), ("record_call", "dry_run")]
    assert crm.mp.writes == []
    assert crm.mp.call_infos == {}


async def test_dry_run_turned_off_during_a_call_keeps_its_later_actions_dry_not_failed(
    crm: Crm,
) -> None:
    await crm.settings(accepted_incoming="client", dry_run=True)
    w = EntryWriter("dry-then-live")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    cut = until_answered(w.events)
    await crm.play(w.events[:cut])
    assert [(a["action"], a["state"]) for a in await crm.settled("dry-then-live", 1)] == [
        ("create_client", "dry_run")]
    await crm.settings(dry_run=False)
    await asyncio.sleep(2.0)  # every replica's copy of the settings (within a second)
    await crm.play(w.events[cut:])
    actions = await crm.settled("dry-then-live", 2)
    # the client was never made, so its call is not recorded on it; nor is that a failure
    assert [(a["action"], a["state"]) for a in actions] == [
        ("create_client", "dry_run"), ("record_call", "dry_run")]
    assert crm.mp.writes == []


# --- exactly once ------------------------------------------------------------------------------
async def test_the_same_new_number_calling_20_times_at_once_on_two_replicas_makes_one_client(
    crm_factory: CrmFactory,
) -> None:
    first = await crm_factory()
    second = await crm_factory()
    await first.settings(accepted_incoming="client")
    writers = []
    for n in range(20):
        w = EntryWriter(f"burst-{n}")
        calls.answered(w, NEW, LINE, [first.ext(n % 3)])
        writers.append(w)
    await asyncio.gather(*((first if n % 2 else second).play(w.events)
                           for n, w in enumerate(writers)))
    for n in range(20):
        await first.settled(f"burst-{n}", 1, within=30)

    async def recorded() -> bool:
        return len(first.mp.call_infos) == 20

    await eventually(recorded, within=30)
    assert len(created(first)) == 1
    planned = [a for n in range(20) for a in await first.actions(f"burst-{n}")]
    assert sum(a["action"] == "create_client" for a in planned) == 1
    assert all(a["state"] == "done" for a in planned)


async def test_every_action_lands_once_when_the_crm_fails_writes_loses_answers_and_throttles(
    crm: Crm,
) -> None:
    await crm.settings(accepted_incoming="client_and_deal", accepted_deal=DEAL)
    faults = crm.mp.faults
    faults.write_error_rate = 0.2
    faults.lost_answer_rate = 0.1
    faults.throttle_rate = 0.1
    numbers = [f"7999100{n:04d}" for n in range(25)]
    for n, number in enumerate(numbers):
        w = EntryWriter(f"f-{n}")
        calls.answered(w, number, LINE, [crm.ext(n % 3)])
        await crm.play(w.events)
        if n == 12:
            crm.mp.expire_tokens()
    for n in range(len(numbers)):
        actions = await crm.settled(f"f-{n}", 3, within=120)
        assert all(a["state"] == "done" for a in actions), actions
    assert len(created(crm)) == len(numbers)
    assert sorted(c.phones[0] for c in created(crm)) == sorted(
        f"+7 999 100-{n // 100:02d}-{n % 100:02d}" for n in range(25))
    assert len(deals(crm)) == len(numbers)
    assert len(crm.mp.call_infos) == len(numbers)


async def test_nothing_is_lost_while_the_crm_is_down(crm: Crm) -> None:
    await crm.settings(accepted_incoming="client")
    crm.mp.faults.down_for(3.0)
    back = datetime.now(UTC).timestamp() + 3.0
    for n in range(5):
        w = EntryWriter(f"down-{n}")
        calls.answered(w, f"7999200{n:04d}", LINE, [crm.ext(0)])
        await crm.play(w.events)
    for n in range(5):
        actions = await crm.settled(f"down-{n}", 2, within=60)
        assert all(a["state"] == "done" for a in actions)
    assert len(created(crm)) == 5
    done = [datetime.fromisoformat(a["done_at"]).timestamp()
            for n in range(5) for a in await crm.actions(f"down-{n}")]
    assert min(done) >= back - 0.1  # the outage was waited out, not skipped


async def test_metrics_count_actions_by_kind_and_outcome_and_show_the_outbox_per_account(
    crm: Crm,
) -> None:
    await crm.settings(accepted_incoming="client")
    crm.mp.faults.write_error_count = 1  # the first create is refused once, then lands
    w = EntryWriter("metrics")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await crm.settled("metrics", 2, within=30)

    async def shown() -> bool:
        text = await (await crm.svc.client.get("/metrics")).text()
        return 'mango_router_outbox_depth{account="default"} 0.0' in text

    await eventually(shown, within=10)
    text = await (await crm.svc.client.get("/metrics")).text()
    assert ('mango_router_crm_actions_planned_total{account="default",kind="create_client"} 1.0'
            in text)
    assert ('mango_router_crm_actions_total{account="default",kind="create_client",'
            'outcome="done"} 1.0' in text)
    assert ('mango_router_crm_actions_total{account="default",kind="create_client",'
            'outcome="uncertain"} 1.0' in text)
    assert ('mango_router_crm_actions_total{account="default",kind="record_call",'
            'outcome="done"} 1.0' in text)
    assert 'mango_router_outbox_oldest_seconds{account="default"} 0.0' in text


async def test_the_legs_of_one_call_on_two_replicas_are_planned_as_one_call(
    crm_factory: CrmFactory,
) -> None:
    a, b = await crm_factory(), await crm_factory()
    await a.settings(accepted_incoming="client", update_responsible_on_transfer=True)
    w = EntryWriter("split")
    calls.answered(w, NEW, LINE, [a.ext(0), a.ext(1)], transfers=1)
    for n, event in enumerate(w.events):  # every other event to the other replica
        await (a if n % 2 else b).play([event])
    actions = await a.settled("split", 3)
    assert [(x["action"], x["state"]) for x in actions] == [
        ("create_client", "done"), ("set_responsible", "done"), ("record_call", "done")]
    [client] = created(a)
    assert client.responsibles == [(CT_EMPLOYEE, a.employee(1))]
    assert a.mp.call_infos["split"]["toUser"]["id"] == a.employee(1)


async def test_an_account_without_a_crm_plans_nothing(service_factory: Any, dsn: str) -> None:
    from tests.conftest import load_records
    from tests.router.data import ALL, ROUTED

    await load_records(dsn, ALL)
    svc = await service_factory()
    w = EntryWriter("no-crm")
    calls.answered(w, ROUTED, LINE, ["101"])
    for e in w.events:
        path = {"call": "events/call", "summary": "events/summary"}[e.kind]
        assert (await svc.event(path, dict(e.payload)))[0] == 200
    await asyncio.sleep(0.5)
    con = await asyncpg.connect(dsn)
    try:
        assert await con.fetchval("SELECT count(*) FROM crm_actions") == 0
    finally:
        await con.close()


async def test_a_call_the_rules_cannot_read_does_not_stop_the_others(crm: Crm) -> None:
    await crm.settings(accepted_incoming="client")
    w = EntryWriter("poison", start=1_700_000_000_000)  # milliseconds, not seconds
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    good = EntryWriter("after-poison")
    calls.answered(good, "79990009988", LINE, [crm.ext(1)])
    await crm.play(good.events)
    await crm.settled("after-poison", 2)
    assert len(created(crm)) == 2  # the odd times were read as now


async def test_deal_if_none_open_makes_one_deal_for_two_calls_at_once(crm: Crm) -> None:
    _client_id, phone = known_client(crm)
    await crm.settings(repeat_calls="deal_if_none_open", accepted_deal=DEAL,
                       missed_deal=MISSED_DEAL)
    writers = [EntryWriter(f"twin-{n}") for n in range(2)]
    for w in writers:
        calls.answered(w, phone, LINE, [crm.ext(0)])
    await asyncio.gather(*(crm.play(w.events) for w in writers))
    for w in writers:
        await crm.settled(w.entry_id, 2)
    assert len(deals(crm)) == 1


async def test_a_starting_replica_plans_the_calls_that_ended_while_none_ran(
    crm: Crm, crm_factory: CrmFactory,
) -> None:
    await crm.settings(accepted_incoming="client")
    w = EntryWriter("while-down")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    account_id = await crm.db.fetchval("SELECT id FROM accounts WHERE name = 'default'")
    for e in w.events:  # journaled, but no replica heard of it (it crashed at once)
        await crm.db.execute(
            """INSERT INTO call_events (account_id, kind, entry_id, payload, journal_key)
               VALUES ($1, $2, $3, $4::jsonb, md5($4::text))""",
            account_id, e.kind, w.entry_id, orjson.dumps(e.payload).decode())
    await crm_factory()  # another replica starts
    actions = await crm.settled("while-down", 2)
    assert [a["action"] for a in actions] == ["create_client", "record_call"]


async def test_a_call_whose_summary_never_comes_is_ended_by_ten_minutes_of_silence(
    crm: Crm,
) -> None:
    from automation.engine import plan_entries
    from lookup.accounts import fetch_accounts

    await crm.settings(missed_incoming="client")
    w = EntryWriter("silent")
    calls.offered_and_missed(w, NEW, LINE, [crm.ext(1)], summary=False)
    await crm.play(w.events)
    await asyncio.sleep(0.3)
    assert await crm.actions("silent") == []  # legs only: the call may still go on
    account = next(a for a in await fetch_accounts(crm.db) if a.name == "default")
    pool = await asyncpg.create_pool(crm.svc.dsn, min_size=1, max_size=2)
    try:
        last = await crm.db.fetchval(
            "SELECT extract(epoch FROM max(received_at)) FROM call_events"
            " WHERE entry_id = 'silent'")
        assert await plan_entries(pool, account, ["silent"], now=float(last) + 599) == []
        assert await plan_entries(pool, account, ["silent"], now=float(last) + 600) == [
            "silent"]
    finally:
        await pool.close()
    actions = await crm.settled("silent", 2)
    assert [a["action"] for a in actions] == ["create_client", "record_call"]
    assert created(crm)[0].responsibles == [(CT_EMPLOYEE, crm.employee(1))]


async def _plan_at(crm: Crm, entry_id: str, after_last_s: float) -> list[str]:
    """``plan_entries`` as if ``after_last_s`` had passed since the call's latest event."""
    from automation.engine import plan_entries
    from lookup.accounts import fetch_accounts

    account = next(a for a in await fetch_accounts(crm.db) if a.name == "default")
    last = await crm.db.fetchval(
        "SELECT extract(epoch FROM max(received_at)) FROM call_events WHERE entry_id = $1",
        entry_id)
    pool = await asyncpg.create_pool(crm.svc.dsn, min_size=1, max_size=2)
    try:
        return await plan_entries(pool, account, [entry_id], now=float(last) + after_last_s)
    finally:
        await pool.close()


async def test_a_long_answered_call_is_not_ended_by_ten_silent_minutes_but_by_its_summary(
    crm: Crm,
) -> None:
    await crm.settings(accepted_incoming="client")
    w = EntryWriter("long")
    calls.answered(w, NEW, LINE, [crm.ext(0)], talk_s=900)  # 15 minutes of talk, no events
    cut = until_answered(w.events)
    await crm.play(w.events[:cut])
    await crm.settled("long", 1)
    assert await _plan_at(crm, "long", SILENCE + 1) == []  # still talking: not ended
    assert [a["action"] for a in await crm.actions("long")] == ["create_client"]
    await crm.play(w.events[cut:])
    actions = await crm.settled("long", 2)
    [record] = [a for a in actions if a["action"] == "record_call"]
    summary = w.events[-1].payload
    assert (record["payload"]["time_from"], record["payload"]["time_to"]) == (
        summary["create_time"], summary["end_time"])


async def test_a_call_whose_disconnected_and_summary_are_lost_is_ended_at_the_cap(
    crm: Crm,
) -> None:
    await crm.settings(accepted_incoming="client")
    w = EntryWriter("lost-end")
    calls.answered(w, NEW, LINE, [crm.ext(0)], summary=False)
    await crm.play(w.events[:-1])  # the last leg never says it hung up
    await crm.settled("lost-end", 1)
    assert await _plan_at(crm, "lost-end", SILENCE + 1) == []
    assert await _plan_at(crm, "lost-end", OPEN_SILENCE) == ["lost-end"]
    actions = await crm.settled("lost-end", 2)
    assert [a["action"] for a in actions] == ["create_client", "record_call"]


async def test_a_plan_whose_transaction_rolled_back_is_counted_once_when_it_is_planned_again(
    crm: Crm,
) -> None:
    await crm.settings(accepted_incoming="client_and_deal", accepted_deal=DEAL)
    # the database refuses the first deal planned: the client planned with it rolls back
    await crm.db.execute("""
        CREATE SEQUENCE refuse_once;  -- not rolled back with the refused transaction
        CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.action = 'create_deal' AND nextval('refuse_once') = 1 THEN
                RAISE EXCEPTION 'refused once';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_once BEFORE INSERT ON crm_actions
            FOR EACH ROW EXECUTE FUNCTION refuse_once();""")
    w = EntryWriter("rolled-back")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    await crm.settled("rolled-back", 3, within=30)
    assert await crm.db.fetchval("SELECT last_value FROM refuse_once") >= 2  # refused, then not
    text = await (await crm.svc.client.get("/metrics")).text()
    for kind in ("create_client", "create_deal", "record_call"):
        assert (f'mango_router_crm_actions_planned_total{{account="default",kind="{kind}"}} 1.0'
                in text), kind

"""Lists: pageAfter paging, the ``since`` watermark, phone search, fields."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from emulators.megaplan import MegaplanState, generate, serve_megaplan
from emulators.megaplan_store import CT_EMPLOYEE, CT_HUMAN
from megaplan.client import MegaplanClient
from megaplan.credentials import MegaplanCredentials


async def test_paging_over_more_than_100_yields_each_record_exactly_once(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    ids = Counter([c.id async for c in client.contractors()])
    assert set(ids) == set(mp_state.clients)
    assert max(ids.values()) == 1
    assert client.request_count == 1 + 3  # token + pages of 100, 100, 50


async def test_a_full_last_page_stops_on_has_more_next_without_an_empty_request() -> None:
    state = generate(clients=200, seed=3)
    async with serve_megaplan(state) as url:
        creds = MegaplanCredentials(base_url=url, username="demo", password="demo")
        async with MegaplanClient(creds, rate_per_second=None) as client:
            assert len([c async for c in client.contractors()]) == 200
            assert client.request_count == 1 + 2


async def test_since_stops_at_the_watermark(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    watermark = mp_state.now()
    changed = sorted(mp_state.clients, key=int)[10:13]
    for oid in changed:
        mp_state.bump(oid)
    got = [c.id async for c in client.contractors(since=watermark)]
    assert sorted(got) == changed
    assert client.request_count == 1 + 1  # one page was enough


async def test_since_reads_across_pages_newest_first(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    ordered = sorted(mp_state.clients.values(), key=lambda r: r.time_updated, reverse=True)
    watermark = ordered[149].time_updated
    got = [c async for c in client.contractors(since=watermark)]
    times = [c.time_updated for c in got if c.time_updated is not None]
    assert len(times) == len(got)
    assert times == sorted(times, reverse=True)
    assert len(got) == sum(1 for r in ordered if r.time_updated >= watermark)
    assert len(got) >= 150


async def test_crm_changes_are_seen_on_the_next_incremental_read(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    watermark = mp_state.now()
    ids = sorted(mp_state.clients, key=int)
    mp_state.drop_client(ids[0])
    mp_state.set_responsibles(ids[1], [(CT_HUMAN, ids[2]), (CT_EMPLOYEE, "1000004")])
    new = mp_state.add_client(
        name="Petr Novikov", phones=["8 916 555 44 33"], responsibles=[(CT_EMPLOYEE, "1000002")]
    )
    mp_state.fire_employee("1000004")
    got = {c.id: c async for c in client.contractors(since=watermark)}
    assert set(got) == {ids[0], ids[1], new.id}
    assert got[ids[0]].dropped is True
    assert [(r.kind, r.id) for r in got[ids[1]].responsibles] == [
        ("client", ids[2]),
        ("employee", "1000004"),
    ]
    assert got[new.id].phones == ("8 916 555 44 33",)
    fired = {e.id: e for e in await client.employees()}["1000004"]
    assert fired.active is False
    assert all(_after(c.time_updated, watermark) for c in got.values())


async def test_find_by_phone_matches_any_written_form(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    a = mp_state.add_client(name="A B", phones=["+7 (916) 123-45-67"])
    b = mp_state.add_client(name="C D", phones=["8 916 123 45 67"])
    found = await client.find_contractors_by_phone("79161234567")
    assert [c.id for c in found] == [a.id, b.id]
    assert await client.find_contractors_by_phone("79990000000") == []


async def test_employees_carry_activity_and_email(
    client: MegaplanClient, mp_state: MegaplanState
) -> None:
    employees = await client.employees()
    assert [e.id for e in employees] == sorted(mp_state.employees, key=int)
    by_id = {e.id: e for e in employees}
    assert by_id["1000001"].email == "emp1@example.com"
    assert by_id["1000003"].active is False  # fired in the generated set
    assert all(e.active == mp_state.employees[e.id].active for e in employees)


def _after(stamp: datetime | None, watermark: datetime) -> bool:
    return stamp is not None and stamp >= watermark

"""The overview, calls, call and employees pages over HTTP, after calls posted as the PBX
posts them (the real app, its PBX emulator, the test database)."""

from __future__ import annotations

import asyncio
import re
import time

import asyncpg
import pytest

from tests.conftest import Service, ServiceFactory, call_event, load_records
from tests.router.data import ALL, ROUTED, add_shop
from tests.router.test_pages_session import sign_in

NO_CLIENT = "79990000000"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str) -> Service:
    await load_records(dsn, ALL)
    service = await service_factory()
    assert (await sign_in(service, "operator-token")).status == 303
    return service


async def decided(svc: Service, db: asyncpg.Connection, count: int) -> None:
    """Until the decision record holds ``count`` calls (it is written in batches)."""
    deadline = time.monotonic() + 5
    while await db.fetchval("SELECT count(*) FROM decisions") < count:
        assert time.monotonic() < deadline, "decisions not recorded"
        await asyncio.sleep(0.05)


async def page(svc: Service, path: str, status: int = 200) -> str:
    resp = await svc.client.get(path, allow_redirects=False)
    assert resp.status == status, path
    return await resp.text()


async def test_a_routed_call_is_on_the_calls_page_with_whom_it_went_to(
    svc: Service, db: asyncpg.Connection,
) -> None:
    assert (await svc.event("events/call", call_event("E-1", ROUTED)))[0] == 200
    assert (await svc.event("events/call", call_event("E-2", NO_CLIENT)))[0] == 200
    await decided(svc, db, 2)
    html = await page(svc, "/calls")
    rows = re.findall(r"<tr>\s*<td><a href=\"/calls/([^\"]+)\">", html)
    assert rows == ["E-2", "E-1"]  # newest first
    assert "Anna · 101" in html
    assert "Client 10" in html
    assert "клиент не найден" in html
    html = await page(svc, "/calls/E-1")
    assert "на добавочный 101 (Anna)" in html
    assert "распределён" in html
    assert "Appeared" in html


async def test_the_calls_page_finds_a_number_however_it_is_written(
    svc: Service, db: asyncpg.Connection,
) -> None:
    await svc.event("events/call", call_event("E-1", ROUTED))
    await svc.event("events/call", call_event("E-2", NO_CLIENT))
    await decided(svc, db, 2)
    for written in ("+7 (916) 123-45-67", "8 916 123 45 67", ROUTED):
        resp = await svc.client.get("/calls", params={"number": written})
        assert resp.status == 200
        assert re.findall(r'<a href="/calls/([^"]+)">', await resp.text()) == ["E-1"], written
    assert "Звонков с этим номером нет." in await page(svc, "/calls?number=79160000099")
    assert "Это не номер телефона." in await page(svc, "/calls?number=abc", 400)
    assert "Неверная ссылка на страницу." in await page(svc, "/calls?before=%%%", 400)


async def test_the_calls_page_goes_back_page_by_page_without_gaps(
    svc: Service, db: asyncpg.Connection,
) -> None:
    for i in range(57):
        await svc.event("events/call", call_event(f"P-{i:02d}", NO_CLIENT))
    await decided(svc, db, 57)
    seen: list[str] = []
    path: str | None = "/calls"
    while path is not None:
        html = await page(svc, path)
        seen += re.findall(r'<a href="/calls/(P-[^"]+)">', html)
        older = re.search(r'<a href="(/calls\?before=[^"]+)" rel="next">', html)
        path = older.group(1).replace("&amp;", "&") if older else None
    assert len(seen) == 57
    assert sorted(seen) == sorted(set(seen))


async def test_htmx_gets_a_bad_number_told_in_the_rows_it_swaps_in(svc: Service) -> None:
    resp = await svc.client.get("/calls", params={"number": "+7 9"},
                                headers={"HX-Request": "true"})
    assert resp.status == 200  # htmx swaps no 4xx: the message must come as rows
    assert "Это не номер телефона." in await resp.text()
    restore = await svc.client.get("/calls", headers={
        "HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in await restore.text()  # a history restore gets the whole page


async def test_a_call_whose_entry_id_has_a_slash_has_its_page(
    svc: Service, db: asyncpg.Connection,
) -> None:
    await svc.event("events/call", call_event("MToxMDE=/2", ROUTED))
    await decided(svc, db, 1)
    html = await page(svc, "/calls")
    [link] = re.findall(r'<a href="(/calls/[^"]+)">', html)
    assert "<code>MToxMDE=/2</code>" in await page(svc, link)


async def test_htmx_asks_for_the_rows_only(svc: Service, db: asyncpg.Connection) -> None:
    await svc.event("events/call", call_event("E-1", ROUTED))
    await decided(svc, db, 1)
    resp = await svc.client.get("/calls", params={"number": ROUTED},
                                headers={"HX-Request": "true"})
    html = await resp.text()
    assert html.lstrip().startswith('<div id="calls">')
    assert "<html" not in html


async def test_an_unknown_call_is_a_404_page(svc: Service) -> None:
    assert "Не найдено." in await page(svc, "/calls/nobody", 404)


async def test_another_accounts_call_is_not_found(
    service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection,
) -> None:
    await load_records(dsn, ALL)
    svc = await service_factory()
    await svc.event("events/call", call_event("E-1", ROUTED))
    await decided(svc, db, 1)
    token = await add_shop(db, svc.client)
    assert (await sign_in(svc, token)).status == 303
    assert "Не найдено." in await page(svc, "/calls/E-1", 404)
    assert "Звонков пока нет." in await page(svc, "/calls")


async def test_the_overview_counts_todays_calls_by_hour_and_reason(
    svc: Service, db: asyncpg.Connection,
) -> None:
    await svc.event("events/call", call_event("E-1", ROUTED))
    await svc.event("events/call", call_event("E-2", NO_CLIENT))
    await svc.event("events/call", call_event("E-3", NO_CLIENT))
    await decided(svc, db, 3)
    html = await page(svc, "/overview")
    assert re.search(r"Звонков сегодня</div><div class=\"big\">3<", html)
    assert re.search(r"Номеров в индексе</div><div class=\"big\">\d", html)
    assert len(re.findall(r'<rect [^>]*class="routed"', html)) == 1
    assert re.search(r'<rect [^>]*class="reason-0"><title>\d\d:00 клиент не найден: 2</title>',
                     html)
    assert re.search(r"<td>клиент не найден</td><td class=\"num\">2</td>", html)


async def test_the_overview_says_the_pbx_answered(svc: Service, db: asyncpg.Connection) -> None:
    await svc.event("events/call", call_event("E-1", ROUTED))
    await decided(svc, db, 1)
    deadline = time.monotonic() + 8  # health is written every few seconds
    html = ""
    while "отвечает" not in html and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        html = await page(svc, "/overview")
    assert re.search(r'id="health-pbx">.*?отвечает', html, re.S)
    assert re.search(r'id="health-crm">.*?Мегаплан не подключён', html, re.S)


async def test_employees_without_an_extension_come_first_and_one_can_be_set(
    svc: Service,
) -> None:
    html = await page(svc, "/employees")
    names = re.findall(r'<tr id="employee-(\d+)"', html)
    assert names == ["4", "1", "2"]  # Gleb (none), then Anna and Boris; Vera is blocked
    assert "Без добавочного: 1." in html
    csrf = _CSRF.search(html).group(1)  # type: ignore[union-attr]
    bad = await svc.client.post("/employees/4", data={"csrf": csrf, "extension": "12a"})
    assert bad.status == 400
    assert "Добавочный — от 1 до 16 цифр." in await bad.text()
    saved = await svc.client.post("/employees/4", data={"csrf": csrf, "extension": "104"},
                                  allow_redirects=False)
    assert saved.status == 303
    html = await page(svc, "/employees?saved=4")
    row = re.search(r'<tr id="employee-4">.*?</tr>', html, re.S)
    assert row is not None
    assert "<td>104</td>" in row.group(0)
    assert "вручную" in row.group(0)
    deadline = time.monotonic() + 3  # the index follows the copy by NOTIFY
    routed_to = None
    while routed_to != "104" and time.monotonic() < deadline:
        resp = await svc.client.get("/route", params={"number": "79160000004"})
        routed_to = (await resp.json()).get("extension")
        await asyncio.sleep(0.05)
    assert routed_to == "104"  # Gleb, the client's first responsible, now has one
    cleared = await svc.client.post("/employees/4", data={"csrf": csrf, "clear": "1"},
                                    allow_redirects=False)
    assert cleared.status == 303
    row = re.search(r'<tr id="employee-4">.*?</tr>', await page(svc, "/employees"), re.S)
    assert row is not None
    assert "вручную" not in row.group(0)


async def test_an_unknown_employee_is_a_404(svc: Service) -> None:
    csrf = _CSRF.search(await page(svc, "/employees")).group(1)  # type: ignore[union-attr]
    resp = await svc.client.post("/employees/999", data={"csrf": csrf, "extension": "1"})
    assert resp.status == 404

"""A call posted as the PBX posts it, then followed in a real browser: the calls list,
its own page with what the automation did in Megaplan, the overview and the
employees (Chromium through Playwright; the Megaplan emulator as the CRM)."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect

from tests.automation import calls
from tests.automation.calls import EntryWriter
from tests.automation.conftest import Crm
from tests.router.browser import browser, shot

__all__ = ["browser"]  # the fixture, used by name

NEW = "79990001122"
LINE = "74951112233"


async def open_pages(browser: Browser, crm: Crm) -> Page:
    context = await browser.new_context(
        base_url=str(crm.svc.client.make_url("/")).rstrip("/"), locale="ru-RU",
        viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto("/signin")
    await page.get_by_label("Токен").fill("operator-token")
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Обзор")
    return page


async def test_a_call_is_followed_from_the_list_to_its_crm_actions(
    browser: Browser, crm: Crm,
) -> None:
    await crm.settings(accepted_incoming="client", route_to_responsible=True)
    w = EntryWriter("page-call")
    calls.answered(w, NEW, LINE, [crm.ext(0)])
    await crm.play(w.events)
    actions = await crm.settled("page-call", 2)
    [client_id] = {a["crm_id"] for a in actions if a["action"] == "create_client"}

    page = await open_pages(browser, crm)
    for _ in range(40):  # each replica writes what it saw of the CRM every 2 s at most
        if "отвечает" in await page.locator("#health-crm").inner_text():
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(page.locator("#health-crm")).to_contain_text("отвечает")
    await shot(page, "overview")
    await page.get_by_role("link", name="Звонки", exact=True).click()
    row = page.locator("table.calls tbody tr").first
    await expect(row).to_contain_text("принят")
    await expect(row).to_contain_text("2 сделано")
    await shot(page, "calls")

    await page.get_by_label("Номер").fill("+7 999 000-11-22")  # htmx: no button press
    await expect(page).to_have_url(re.compile(r"number=%2B7(%20|\+)999"))
    await expect(page.locator("table.calls tbody tr")).to_have_count(1)
    await page.get_by_label("Номер").fill("+7 999 000-00-00")
    await expect(page.get_by_text("Звонков с этим номером нет.")).to_be_visible()
    await page.get_by_label("Номер").fill("")

    await page.goto("/calls/page-call")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("page-call")
    timeline = page.locator("ol.timeline")
    await expect(timeline).to_contain_text("создать клиента")
    await expect(timeline).to_contain_text("записать звонок")
    link = timeline.get_by_role("link", name=f"в Мегаплане #{client_id}").first
    await expect(link).to_have_attribute("href", re.compile(rf"/crm/{client_id}/card/$"))
    await shot(page, "call")

    await page.get_by_role("link", name="Сотрудники").click()
    await expect(page.locator("table.employees tbody tr").first).to_be_visible()
    await shot(page, "employees")

"""The sign-in and settings pages in a real browser (Chromium through Playwright)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import Service, ServiceFactory, load_records
from tests.router.browser import browser, shot
from tests.router.data import ALL, add_programs, add_shop

__all__ = ["browser"]  # the fixture, used by name

OPERATOR = {"Authorization": "Bearer operator-token"}


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection) -> Service:
    await load_records(dsn, ALL)
    await add_programs(db)
    return await service_factory()


@pytest.fixture
async def page(browser: Browser, svc: Service) -> Page:
    context = await browser.new_context(base_url=str(svc.client.make_url("/")).rstrip("/"),
                                        locale="ru-RU", viewport={"width": 1280, "height": 900})
    return await context.new_page()


async def sign_in(page: Page, token: str) -> None:
    await page.goto("/signin?next=/settings")
    await page.get_by_label("Токен").fill(token)
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Дополнительные настройки интеграции")


async def api_settings(svc: Service) -> dict[str, Any]:
    found: dict[str, Any] = await (await svc.client.get("/api/settings", headers=OPERATOR)).json()
    return found


async def test_signing_in_and_out(page: Page, svc: Service) -> None:
    await page.goto("/settings")
    assert page.url.endswith("/signin?next=/settings")
    await shot(page, "signin")
    await page.get_by_label("Токен").fill("operator-token")
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Дополнительные настройки интеграции")
    assert page.url.endswith("/settings")
    cookies = await page.context.cookies()
    [session] = [c for c in cookies if c["name"] == "mango_router_session"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    assert "operator-token" not in session["value"]
    await page.get_by_role("button", name="Выйти").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Вход")
    await page.goto("/settings")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Вход")


async def test_a_wrong_token_is_told_and_opens_nothing(page: Page) -> None:
    await page.goto("/signin")
    await page.get_by_label("Токен").fill("guess")
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("alert")).to_have_text("Этот токен не открывает ни один аккаунт.")
    await shot(page, "signin-refused")
    await page.goto("/settings")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Вход")


async def test_dependent_fields_appear_when_they_apply(page: Page) -> None:
    await sign_in(page, "operator-token")
    deal = page.get_by_label("Процесс при принятых входящих звонках")
    ivr_employee = page.locator("#setting-missed_in_ivr").get_by_label("Ответственный сотрудник")
    await expect(deal).to_be_hidden()
    await expect(ivr_employee).to_be_hidden()
    await page.get_by_label("Автоматически создавать клиента при принятых входящих звонках") \
        .select_option("client_and_deal")  # «Будут открыты дополнительные поля»
    await expect(deal).to_be_visible()
    await page.get_by_label("Указать ответственного при пропущенных звонках в IVR").check()
    await expect(ivr_employee).to_be_visible()
    await page.get_by_label("Автоматически создавать клиента при принятых входящих звонках") \
        .select_option("nothing")
    await expect(deal).to_be_hidden()
    # a repeat-call deal needs both deal settings: both open
    await page.get_by_label("Действия при повторных звонках от клиентов") \
        .select_option("always_deal")
    await expect(deal).to_be_visible()
    await expect(page.get_by_label("Процесс при пропущенных входящих звонках")).to_be_visible()
    await shot(page, "settings-dependent-fields")


async def test_every_setting_changed_in_the_page_is_what_the_api_returns(
    page: Page, svc: Service,
) -> None:
    await sign_in(page, "operator-token")
    await shot(page, "settings")
    await page.get_by_label("Распределять вызовы от клиентов по ответственным сотрудникам") \
        .uncheck()
    await page.get_by_label("Автоматически создавать клиента при принятых входящих звонках") \
        .select_option(label="Клиента и процесс")
    await page.get_by_label("Процесс при принятых входящих звонках") \
        .select_option(label="Продажи — Встреча")
    await page.get_by_label("Автоматически создавать клиента при пропущенных входящих звонках") \
        .select_option(label="Клиента")
    await page.get_by_label("Действия при повторных звонках от клиентов") \
        .select_option(label="создавать процесс, если нет открытых")
    await page.get_by_label("Процесс при пропущенных входящих звонках") \
        .select_option(label="Сервис — Заявка")
    await page.get_by_label("Указывать источник при входящих звонках").check()
    await page.get_by_label("Обновлять ответственного при переводах входящих вызовов").check()
    await page.get_by_label("Указать ответственного при пропущенных звонках в IVR").check()
    await page.locator("#setting-missed_in_ivr").get_by_label("Ответственный сотрудник") \
        .select_option(label="Boris")
    await page.get_by_label("Указать ответственного при пропущенных звонках в группу").check()
    await page.locator("#setting-missed_in_group").get_by_label("Ответственный сотрудник") \
        .select_option(label="Gleb")
    await page.get_by_label("Автоматически создавать клиента при исходящих звонках").check()
    await page.get_by_label("Номер нового клиента записывается в Мегаплан в формате") \
        .select_option(label="8 (916) 123-45-67")
    await page.get_by_label("Страна номеров без кода страны").fill("BY")
    await page.get_by_label("Часовой пояс").fill("Europe/Minsk")
    await page.get_by_label("Пропускать занятого ответственного").check()
    await page.get_by_label("Звонок с номера, которого нет в Мегаплане").check()
    await page.get_by_label("Если разговор был не раньше").fill("48")
    await page.get_by_label("Распределять звонки только на эти линии").fill(
        "+375 17 123-45-67\n+375 17 765-43-21")
    await page.get_by_label("Пробный режим").check()
    await page.get_by_role("button", name="Сохранить").click()
    await expect(page.get_by_role("status")).to_contain_text("Настройки сохранены")
    await shot(page, "settings-saved")
    assert await api_settings(svc) == {
        "route_to_responsible": False, "accepted_incoming": "client_and_deal",
        "accepted_deal": {"program_id": "1", "state_id": "12"}, "missed_incoming": "client",
        "missed_deal": {"program_id": "2", "state_id": "21"},
        "repeat_calls": "deal_if_none_open", "source_line": True,
        "update_responsible_on_transfer": True,
        "missed_in_ivr": {"enabled": True, "employee_id": "2"},
        "missed_in_group": {"enabled": True, "employee_id": "4"},
        "outgoing_create_client": True, "phone_format": "national", "default_region": "BY",
        "timezone": "Europe/Minsk", "dry_run": True, "skip_busy_responsible": True,
        "route_unknown_to_last_contact": {"enabled": True, "within_hours": 48},
        "route_lines": ["+375 17 123-45-67", "+375 17 765-43-21"]}


async def test_a_refused_save_shows_why_beside_the_field_and_changes_nothing(
    page: Page, svc: Service,
) -> None:
    before = await api_settings(svc)
    await sign_in(page, "operator-token")
    await page.get_by_label("Пробный режим").check()
    await page.get_by_label("Автоматически создавать клиента при принятых входящих звонках") \
        .select_option("client_and_deal")  # and no deal chosen
    await page.get_by_role("button", name="Сохранить").click()
    field_error = page.locator("#accepted_deal-error")
    await expect(field_error).to_have_text(
        "Выберите вид процесса и статус: в этом режиме создаётся процесс.")
    await expect(page.locator("#setting-accepted_deal")).to_be_visible()
    await shot(page, "settings-refused")
    assert await api_settings(svc) == before


async def test_the_pages_switch_to_english(page: Page) -> None:
    await sign_in(page, "operator-token")
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Additional integration settings")
    await expect(page.get_by_label("Route calls from clients to their responsible employees")) \
        .to_be_checked()
    await shot(page, "settings-en")
    await page.get_by_role("link", name="Русский").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Дополнительные настройки интеграции")


async def test_an_accounts_token_cannot_see_another_account(
    page: Page, svc: Service, db: asyncpg.Connection,
) -> None:
    token = await add_shop(db, svc.client)
    await sign_in(page, token)
    await expect(page.locator(".account")).to_have_text("Аккаунт: shop")
    await expect(page.locator("select[name=account]")).to_have_count(0)
    # a hand-made form for the other account is refused
    await page.evaluate("""() => {
        const f = document.querySelector('form[action="/signout"]');
        f.action = '/account';
        const i = document.createElement('input');
        i.name = 'account'; i.value = 'default'; f.appendChild(i);
        f.submit();
    }""")
    await expect(page.get_by_role("alert")).to_have_text("Этот вход не открывает этот аккаунт.")
    await page.goto("/settings")
    await expect(page.locator(".account")).to_have_text("Аккаунт: shop")


async def test_a_form_posted_without_its_csrf_token_is_refused(
    page: Page, svc: Service,
) -> None:
    await sign_in(page, "operator-token")
    await page.get_by_label("Пробный режим").check()
    await page.evaluate("() => document.querySelector('form.settings input[name=csrf]').remove()")
    await page.get_by_role("button", name="Сохранить").click()
    await expect(page.get_by_role("alert")).to_contain_text("CSRF")
    assert (await api_settings(svc))["dry_run"] is False

"""The pages' sign-in, session cookie, CSRF, rate limit, language and settings form,
through the real app over HTTP (the browser flows are in tests/router/test_browser_settings.py and
tests/automation/test_browser_calls.py)."""

from __future__ import annotations

import asyncio
import re
import time
from html.parser import HTMLParser
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse
from yarl import URL

from lookup.accounts import new_token
from router.pages.signin import SIGN_IN_LIMIT
from tests.conftest import Service, ServiceFactory, load_records
from tests.router.data import ALL, add_programs, add_shop

OPERATOR = {"Authorization": "Bearer operator-token"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection) -> Service:
    await load_records(dsn, ALL)
    await add_programs(db)
    return await service_factory()


async def csrf_of(svc: Service, path: str) -> str:
    resp = await svc.client.get(path)
    assert resp.status == 200, path
    found = _CSRF.search(await resp.text())
    assert found is not None, f"no CSRF token on {path}"
    return found.group(1)


async def sign_in(svc: Service, token: str, *, next_path: str = "/overview") -> ClientResponse:
    csrf = await csrf_of(svc, "/signin")
    return await svc.client.post("/signin", data={"token": token, "csrf": csrf,
                                                   "next": next_path}, allow_redirects=False)


class _Form(HTMLParser):
    """The values a browser would post for the page's ``/settings`` form."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, Any] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name:
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.values[name] = "on"
            else:
                self.values[name] = a.get("value") or ""
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data


async def settings_form(svc: Service) -> dict[str, Any]:
    html = await (await svc.client.get("/settings")).text()
    form = html[html.index('<form method="post" action="/settings"'):]
    parser = _Form()
    parser.feed(form[:form.index("</form>")])
    return parser.values


async def api_settings(svc: Service) -> dict[str, Any]:
    resp = await svc.client.get("/api/settings", headers=OPERATOR)
    found: dict[str, Any] = await resp.json()
    return found


async def test_a_page_sends_who_is_not_signed_in_to_the_sign_in_form(svc: Service) -> None:
    resp = await svc.client.get("/settings?from=menu", allow_redirects=False)
    assert resp.status == 303
    location = URL(resp.headers["Location"])
    assert (location.path, location.query["next"]) == ("/signin", "/settings?from=menu")
    page = await svc.client.get("/signin")
    assert page.status == 200
    html = await page.text()
    assert '<html lang="ru">' in html
    assert "Войти" in html


async def test_a_wrong_token_is_refused_and_opens_nothing(svc: Service) -> None:
    resp = await sign_in(svc, "not-a-token")
    assert resp.status == 403
    assert "Этот токен не открывает ни один аккаунт." in await resp.text()
    assert (await svc.client.get("/settings", allow_redirects=False)).status == 303


async def test_the_session_cookie_is_signed_strict_httponly_and_holds_no_token(
    svc: Service,
) -> None:
    resp = await sign_in(svc, "operator-token", next_path="/settings")
    assert resp.status == 303
    assert resp.headers["Location"] == "/settings"
    cookie = resp.cookies["mango_router_session"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert int(cookie["max-age"]) == 12 * 3600
    assert "operator-token" not in cookie.value
    assert (await svc.client.get("/settings")).status == 200
    # the API takes bearer tokens only: the page's cookie is no way in
    assert (await svc.client.get("/api/settings")).status == 401


async def test_a_tampered_session_cookie_is_no_session(svc: Service) -> None:
    signed = await sign_in(svc, "operator-token")
    value = signed.cookies["mango_router_session"].value
    svc.client.session.cookie_jar.clear()
    cookie = {"Cookie": f"mango_router_session={value}"}
    assert (await svc.client.get("/settings", headers=cookie, allow_redirects=False)).status \
        == 200  # the cookie as it was still opens the page
    middle = len(value) // 2
    tampered = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1:]
    resp = await svc.client.get("/settings", allow_redirects=False,
                                headers={"Cookie": f"mango_router_session={tampered}"})
    assert resp.status == 303


async def test_sign_out_ends_the_session(svc: Service) -> None:
    await sign_in(svc, "operator-token")
    csrf = await csrf_of(svc, "/settings")
    out = await svc.client.post("/signout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await svc.client.get("/settings", allow_redirects=False)).status == 303


async def test_a_new_account_token_ends_the_sessions_of_the_old_one(
    svc: Service, db: asyncpg.Connection,
) -> None:
    token = await add_shop(db, svc.client)
    assert (await sign_in(svc, token)).status == 303
    assert (await svc.client.get("/settings")).status == 200
    assert await new_token(db, "shop") is not None
    deadline = time.monotonic() + 3
    status = 200
    while status == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status = (await svc.client.get("/settings", allow_redirects=False)).status
    assert status == 303


async def test_an_accounts_token_sees_only_its_account(
    svc: Service, db: asyncpg.Connection,
) -> None:
    token = await add_shop(db, svc.client)
    await sign_in(svc, token)
    html = await (await svc.client.get("/settings")).text()
    assert "<b>shop</b>" in html
    assert 'name="account"' not in html  # no account picker
    csrf = _CSRF.search(html).group(1)  # type: ignore[union-attr]
    picked = await svc.client.post("/account", data={"csrf": csrf, "account": "default"},
                                   allow_redirects=False)
    assert picked.status == 403
    assert "<b>shop</b>" in await (await svc.client.get("/settings")).text()


async def test_the_operator_picks_the_account_to_look_at(
    svc: Service, db: asyncpg.Connection,
) -> None:
    await add_shop(db, svc.client)
    await sign_in(svc, "operator-token")
    csrf = await csrf_of(svc, "/settings")
    picked = await svc.client.post("/account", data={"csrf": csrf, "account": "shop",
                                                      "next": "/settings"},
                                   allow_redirects=False)
    assert picked.status == 303
    assert picked.headers["Location"] == "/settings"
    html = await (await svc.client.get("/settings")).text()
    assert re.search(r"<option selected>shop</option>", html)


async def test_a_form_drawn_for_one_account_is_not_saved_into_another_picked_since(
    svc: Service, db: asyncpg.Connection,
) -> None:
    # The operator opens the settings of "default" in one tab, picks "shop" in another,
    # then saves the first: nothing of it goes into shop (nor into default).
    await add_shop(db, svc.client)
    await sign_in(svc, "operator-token")
    form = await settings_form(svc)
    assert form["for_account"] == "default"
    form["dry_run"] = "on"
    picked = await svc.client.post("/account", data={"csrf": form["csrf"], "account": "shop",
                                                      "next": "/settings"},
                                   allow_redirects=False)
    assert picked.status == 303
    resp = await svc.client.post("/settings", data=form, allow_redirects=False)
    assert resp.status == 409
    assert "другого аккаунта" in await resp.text()
    for account in ("default", "shop"):
        found = await (await svc.client.get("/api/settings", params={"account": account},
                                            headers=OPERATOR)).json()
        assert found["dry_run"] is False


async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    svc: Service,
) -> None:
    await sign_in(svc, "operator-token")
    form = await settings_form(svc)
    form["dry_run"] = "on"
    for bad in ("", "forged"):
        resp = await svc.client.post("/settings", data={**form, "csrf": bad},
                                     allow_redirects=False)
        assert resp.status == 403
        assert "CSRF" in await resp.text()
    assert (await api_settings(svc))["dry_run"] is False
    no_csrf = await sign_in_without_csrf(svc)
    assert no_csrf.status == 403


async def sign_in_without_csrf(svc: Service) -> ClientResponse:
    svc.client.session.cookie_jar.clear()
    return await svc.client.post("/signin", data={"token": "operator-token"},
                                 allow_redirects=False)


async def test_sign_in_attempts_are_limited_per_address(svc: Service) -> None:
    allowed = SIGN_IN_LIMIT.amount
    statuses = [(await sign_in(svc, "wrong")).status for _ in range(allowed + 1)]
    assert statuses == [403] * allowed + [429]
    limited = await sign_in(svc, "operator-token")  # even the right token, for now
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "60"


async def test_a_broken_form_is_a_400_not_a_500(svc: Service) -> None:
    resp = await svc.client.post(
        "/signin", data=b"--x\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert resp.status == 400


async def test_the_language_switch_turns_the_pages_english_and_back(svc: Service) -> None:
    resp = await svc.client.get("/lang/en?next=/signin")
    assert resp.status == 200
    html = await resp.text()
    assert '<html lang="en">' in html
    assert "Sign in with the operator&#39;s token" in html
    await svc.client.get("/lang/ru?next=/signin")
    assert '<html lang="ru">' in await (await svc.client.get("/signin")).text()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil"])
async def test_the_language_switch_never_sends_to_another_site(
    svc: Service, target: str,
) -> None:
    resp = await svc.client.get("/lang/en", params={"next": target}, allow_redirects=False)
    assert resp.headers["Location"] == "/overview"


async def test_the_settings_form_saves_every_setting(svc: Service) -> None:
    await sign_in(svc, "operator-token")
    form = await settings_form(svc)
    form.update({
        "route_to_responsible": None, "accepted_incoming": "client_and_deal",
        "accepted_deal": "1:12", "missed_incoming": "client_and_deal", "missed_deal": "2:21",
        "repeat_calls": "deal_if_none_open", "source_line": "on",
        "update_responsible_on_transfer": "on", "missed_in_ivr.enabled": "on",
        "missed_in_ivr.employee_id": "2", "missed_in_group.enabled": "on",
        "missed_in_group.employee_id": "4", "outgoing_create_client": "on",
        "phone_format": "national", "default_region": "kz", "timezone": "Asia/Almaty",
        "dry_run": "on", "skip_busy_responsible": "on",
        "route_unknown_to_last_contact.enabled": "on",
        "route_unknown_to_last_contact.within_hours": "24",
        "route_lines": "+7 495 111-22-33\n\n74952223344\n"})
    resp = await svc.client.post("/settings", data={k: v for k, v in form.items()
                                                    if v is not None}, allow_redirects=False)
    assert resp.status == 303, re.findall(r'class="error[^"]*"[^>]*>([^<]*)<', await resp.text())
    assert resp.headers["Location"] == "/settings?saved=1"
    assert await api_settings(svc) == {
        "route_to_responsible": False, "accepted_incoming": "client_and_deal",
        "accepted_deal": {"program_id": "1", "state_id": "12"},
        "missed_incoming": "client_and_deal",
        "missed_deal": {"program_id": "2", "state_id": "21"},
        "repeat_calls": "deal_if_none_open", "source_line": True,
        "update_responsible_on_transfer": True,
        "missed_in_ivr": {"enabled": True, "employee_id": "2"},
        "missed_in_group": {"enabled": True, "employee_id": "4"},
        "outgoing_create_client": True, "phone_format": "national", "default_region": "KZ",
        "timezone": "Asia/Almaty", "dry_run": True, "skip_busy_responsible": True,
        "route_unknown_to_last_contact": {"enabled": True, "within_hours": 24},
        "route_lines": ["+7 495 111-22-33", "74952223344"]}
    html = await (await svc.client.get("/settings?saved=1")).text()
    assert "Настройки сохранены" in html
    assert re.search(r'<option value="1:12" selected>Продажи — Встреча</option>', html)
    # posted again unchanged, the form keeps every value
    again = await svc.client.post("/settings", data=await settings_form(svc),
                                  allow_redirects=False)
    assert again.status == 303
    assert (await api_settings(svc))["missed_in_group"] == {"enabled": True, "employee_id": "4"}


async def test_a_refused_save_names_its_field_and_changes_nothing(svc: Service) -> None:
    await sign_in(svc, "operator-token")
    before = await api_settings(svc)
    form = await settings_form(svc)
    form.update({"accepted_incoming": "client_and_deal", "accepted_deal": "",
                 "dry_run": "on"})
    resp = await svc.client.post("/settings", data=form)
    assert resp.status == 400
    html = await resp.text()
    assert 'id="accepted_deal-error"' in html
    assert "Выберите вид процесса и статус" in html
    assert 'class="setting dependent invalid" id="setting-accepted_deal"' in html
    assert re.search(r'<option value="client_and_deal" selected>', html)  # what was sent
    assert await api_settings(svc) == before


async def test_dependent_fields_are_hidden_until_they_apply(svc: Service) -> None:
    await sign_in(svc, "operator-token")
    html = await (await svc.client.get("/settings")).text()
    deal = re.search(r'<div class="setting dependent" id="setting-accepted_deal"[^>]*>', html)
    assert deal is not None
    assert "hidden" in deal.group(0)
    assert 'data-show-when="accepted_incoming=client_and_deal|repeat_calls!=record_only"' in \
        deal.group(0)
    form = await settings_form(svc)
    form.update({"accepted_incoming": "client_and_deal", "accepted_deal": "1:11"})
    assert (await svc.client.post("/settings", data=form)).status == 200
    html = await (await svc.client.get("/settings")).text()
    deal = re.search(r'<div class="setting dependent" id="setting-accepted_deal"[^>]*>', html)
    assert deal is not None
    assert "hidden" not in deal.group(0)


async def test_opening_the_sign_in_page_keeps_the_session(svc: Service) -> None:
    """A link from another site lands on /signin without the SameSite=Strict session
    cookie; the page it shows must not replace that session."""
    await sign_in(svc, "operator-token")
    resp = await svc.client.get("/signin")
    assert "mango_router_session" not in resp.cookies
    assert (await svc.client.get("/settings", allow_redirects=False)).status == 200


async def test_a_control_character_in_a_setting_is_refused_not_a_500(svc: Service) -> None:
    await sign_in(svc, "operator-token")
    form = await settings_form(svc)
    form.update({"missed_in_ivr.employee_id": "2\x00", "accepted_deal": "1\x00:11"})
    resp = await svc.client.post("/settings", data=form)
    assert resp.status == 400
    api = await svc.client.put("/api/settings", headers=OPERATOR,
                               json={"missed_in_group": {"enabled": False,
                                                         "employee_id": "4\x00"}})
    assert api.status == 400
    assert (await api.json())["field"] == "missed_in_group.employee_id"


async def test_a_refused_route_line_is_named_beside_the_field(svc: Service) -> None:
    await sign_in(svc, "operator-token")
    form = await settings_form(svc)
    form["route_lines"] = "+7 495 111-22-33\nabc"
    resp = await svc.client.post("/settings", data=form)
    assert resp.status == 400
    assert re.search(r'id="route_lines-error"[^>]*>Не номер телефона: &#39;abc&#39;<',
                     await resp.text())


async def test_the_last_contact_window_left_empty_while_off_does_not_block_a_save(
    svc: Service,
) -> None:
    await sign_in(svc, "operator-token")
    form = await settings_form(svc)
    form.pop("route_unknown_to_last_contact.enabled", None)
    form.update({"route_unknown_to_last_contact.within_hours": "", "dry_run": "on"})
    resp = await svc.client.post("/settings", data=form, allow_redirects=False)
    assert resp.status == 303
    got = await api_settings(svc)
    assert got["dry_run"] is True
    assert got["route_unknown_to_last_contact"] == {"enabled": False, "within_hours": 72}

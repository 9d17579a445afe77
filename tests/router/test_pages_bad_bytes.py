"""The pages given cookies, tokens and form fields that are not UTF-8 text (aiohttp hands
undecodable header bytes, and what a charset such as UTF-7 decodes to, on as lone
surrogates): no session, or a 400/403 with its reason, never a 500."""

from __future__ import annotations

import re
import secrets
from typing import Any

import asyncpg
import pytest

from tests.conftest import Service, ServiceFactory, load_records
from tests.router.data import ALL, add_programs
from tests.router.test_auth_bad_bytes import raw_request
from tests.router.test_pages_session import (
    OPERATOR,
    api_settings,
    csrf_of,
    settings_form,
    sign_in,
)

LONE_SURROGATE = "+2AA-"  # UTF-7 for "\ud800"


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str, db: asyncpg.Connection) -> Service:
    await load_records(dsn, ALL)
    await add_programs(db)
    return await service_factory()


def multipart(fields: dict[str, Any], utf7: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A multipart form whose ``utf7`` fields say ``charset=utf-7``, as a browser never sends
    but anyone may."""
    boundary = secrets.token_hex(8)
    parts = [(k, str(v), "utf-8") for k, v in fields.items() if v is not None and k not in utf7]
    parts += [(k, v, "utf-7") for k, v in utf7.items()]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        f"Content-Type: text/plain; charset={charset}\r\n\r\n".encode()
        + value.encode() + b"\r\n" for name, value, charset in parts)
    return body + f"--{boundary}--\r\n".encode(), {
        "Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.parametrize("value", [b"\xff\xfe", b"\xc3\xa9\xff", b"gAAAA\xff"])
async def test_a_session_cookie_that_is_not_utf8_is_no_session(
    svc: Service, value: bytes,
) -> None:
    for path in (b"/settings", b"/overview"):
        status, headers = await raw_request(
            svc, b"GET " + path + b" HTTP/1.1\r\nCookie: mango_router_session=" + value)
        assert status == 303, path
        assert re.search(r"(?im)^Location: /signin", headers), headers


async def test_a_sign_in_csrf_token_that_is_not_text_is_refused(svc: Service) -> None:
    csrf = await csrf_of(svc, "/signin")
    body, headers = multipart({"token": "operator-token"}, {"csrf": LONE_SURROGATE})
    resp = await svc.client.post("/signin", data=body, headers=headers, allow_redirects=False)
    assert resp.status in (400, 403)
    assert "mango_router_session" not in resp.cookies
    # the right token with the right CSRF still signs in: the refusal was for the form
    assert (await svc.client.post("/signin", data={"token": "operator-token", "csrf": csrf},
                                  allow_redirects=False)).status == 303


async def test_a_sign_in_cookie_that_is_not_utf8_is_refused(svc: Service) -> None:
    body = b"token=operator-token&csrf=" + b"A" * 32
    status, headers = await raw_request(
        svc, b"POST /signin HTTP/1.1\r\nCookie: mango_router_signin=\xc3\xa9\xff\r\n"
        b"Content-Type: application/x-www-form-urlencoded", body)
    assert status == 403
    assert "mango_router_session=" not in headers


@pytest.mark.parametrize(("field", "token"), [("token", "operator-token"),
                                              ("next", "wrong-token")])  # shown on the page
async def test_a_sign_in_field_that_is_not_text_is_refused(
    svc: Service, field: str, token: str,
) -> None:
    csrf = await csrf_of(svc, "/signin")
    fields = {"token": token, "csrf": csrf, "next": "/settings"}
    body, headers = multipart(fields, {field: "/" + LONE_SURROGATE})
    resp = await svc.client.post("/signin", data=body, headers=headers, allow_redirects=False)
    assert resp.status in (400, 403)
    assert "mango_router_session" not in resp.cookies


@pytest.mark.parametrize("field", ["csrf", "timezone", "route_lines", "default_region",
                                   "missed_in_ivr.employee_id", "accepted_deal"])
async def test_a_settings_field_that_is_not_text_is_refused_and_changes_nothing(
    svc: Service, field: str,
) -> None:
    await sign_in(svc, "operator-token")
    before = await api_settings(svc)
    form = await settings_form(svc)
    form["dry_run"] = "on"
    body, headers = multipart(form, {field: LONE_SURROGATE})
    resp = await svc.client.post("/settings", data=body, headers=headers, allow_redirects=False)
    assert resp.status in (400, 403)
    await resp.text()  # the refusal is a page that can be sent
    assert await api_settings(svc) == before


@pytest.mark.parametrize("zone", ["Europe", "America/Argentina", "a" * 300, "Europe/" + "b" * 300])
async def test_a_timezone_that_is_a_directory_or_too_long_is_a_400_naming_it(
    svc: Service, zone: str,
) -> None:
    api = await svc.client.put("/api/settings", headers=OPERATOR, json={"timezone": zone})
    assert api.status == 400
    assert (await api.json())["field"] == "timezone"
    await sign_in(svc, "operator-token")
    form = await settings_form(svc)
    form["timezone"] = zone
    page = await svc.client.post("/settings", data=form, allow_redirects=False)
    assert page.status == 400
    assert 'id="timezone-error"' in await page.text()
    assert (await api_settings(svc))["timezone"] == "Europe/Moscow"

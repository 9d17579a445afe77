"""Every error answer is JSON made in one place: ``router.errors``, and the service using it."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from router.errors import ApiError, error_middleware
from tests.conftest import Service, ServiceFactory, load_records
from tests.router.data import ALL, ROUTED

OPERATOR = {"Authorization": "Bearer operator-token"}


async def _raise_api_error(_request: web.Request) -> web.Response:
    raise ApiError(400, "dry_run: must be true or false", "dry_run")


async def _raise_http_error(_request: web.Request) -> web.Response:
    raise web.HTTPConflict(text="taken already")


async def _redirect(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


async def _bug(_request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def _slow(_request: web.Request) -> web.Response:
    raise TimeoutError


@pytest.fixture
async def bare() -> AsyncIterator[TestClient[Any, Any]]:
    """An app with only the middleware and a few handlers that fail on purpose."""
    app = web.Application(middlewares=[error_middleware], client_max_size=16)
    app.router.add_get("/api-error", _raise_api_error)
    app.router.add_get("/http-error", _raise_http_error)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/bug", _bug)
    app.router.add_get("/slow", _slow)
    app.router.add_post("/echo", _echo)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


async def _error(resp: Any) -> dict[str, Any]:
    """The body of an error answer, checked to be JSON and to say so."""
    assert resp.content_type == "application/json"
    body: dict[str, Any] = orjson.loads(await resp.read())
    return body


async def test_api_error_names_the_reason_and_the_field(bare: TestClient[Any, Any]) -> None:
    resp = await bare.get("/api-error")
    assert resp.status == 400
    assert await _error(resp) == {"error": "dry_run: must be true or false", "field": "dry_run"}


async def test_aiohttp_errors_become_json_keeping_their_text_and_headers(
    bare: TestClient[Any, Any],
) -> None:
    conflict = await bare.get("/http-error")
    assert (conflict.status, await _error(conflict)) == (409, {"error": "taken already"})
    missing = await bare.get("/nowhere")
    assert (missing.status, await _error(missing)) == (404, {"error": "not found"})
    wrong = await bare.post("/bug")
    assert (wrong.status, await _error(wrong)) == (405, {"error": "method not allowed"})
    assert wrong.headers["Allow"] == "GET,HEAD"
    large = await bare.post("/echo", data=b"x" * 17)
    assert large.status == 413
    assert "Maximum request body size 16 exceeded" in (await _error(large))["error"]


async def test_redirects_pass_through(bare: TestClient[Any, Any]) -> None:
    resp = await bare.get("/redirect", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (302, "/elsewhere")


async def test_a_bug_is_a_logged_500_not_a_400(
    bare: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="router.errors"):
        resp = await bare.get("/bug")
    assert (resp.status, await _error(resp)) == (500, {"error": "internal error"})
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)


async def test_a_timeout_is_a_504_as_aiohttp_answers_it(bare: TestClient[Any, Any]) -> None:
    resp = await bare.get("/slow")
    assert (resp.status, await _error(resp)) == (504, {"error": "timed out"})


@pytest.fixture
async def svc(service_factory: ServiceFactory, dsn: str) -> Service:
    await load_records(dsn, ALL)
    return await service_factory()


@pytest.mark.parametrize("name", ['a"b', "o'brien", 'back\\slash "and" quotes\'', "тест"])
@pytest.mark.parametrize("path", ["/route", "/api/settings", "/api/calls"])
async def test_an_unknown_account_with_quotes_in_its_name_gets_valid_json(
    svc: Service, path: str, name: str
) -> None:
    resp = await svc.client.get(path, params={"account": name, "number": ROUTED},
                                headers=OPERATOR)
    assert resp.status == 400
    assert await _error(resp) == {"error": f"unknown account {name!r}"}


async def test_the_service_answers_an_unknown_path_and_a_wrong_method_with_json(
    svc: Service,
) -> None:
    missing = await svc.client.get("/no/such/path")
    assert (missing.status, await _error(missing)) == (404, {"error": "not found"})
    wrong = await svc.client.delete("/api/settings", headers=OPERATOR)
    assert wrong.status == 405
    assert await _error(wrong) == {"error": "method not allowed"}


async def test_the_service_refuses_with_json_bodies(svc: Service) -> None:
    cases: list[tuple[str, str, dict[str, Any], int, dict[str, Any]]] = [
        ("GET", "/api/settings", {}, 401, {"error": "a bearer token is required"}),
        ("GET", "/api/settings", {"headers": {"Authorization": "Bearer nope"}}, 403,
         {"error": "this token has no access to this account"}),
        ("PUT", "/api/settings", {"headers": OPERATOR, "data": b"{not json"}, 400,
         {"error": "body is not valid JSON"}),
        ("PUT", "/api/settings", {"headers": OPERATOR, "json": {"colour": "red"}}, 400,
         {"error": "colour: is not a setting", "field": "colour"}),
        ("GET", "/api/accounts/nobody/sync", {"headers": OPERATOR}, 404,
         {"error": "unknown account 'nobody'"}),
        ("GET", "/route", {"params": {"number": "abc"}}, 400,
         {"number": "abc", "error": "not a phone number"}),
        ("POST", "/mango/events/call", {"data": {"vpbx_api_key": "x"}}, 400,
         {"error": "vpbx_api_key, sign and json are required form fields"}),
    ]
    for method, path, kwargs, status, body in cases:
        resp = await svc.client.request(method, path, **kwargs)
        assert (resp.status, await _error(resp)) == (status, body), (method, path)
    large = await svc.client.put("/api/settings", headers=OPERATOR,
                                 data=io.BytesIO(b"[" * (1024**2 + 1)))
    assert large.status == 413
    assert "Maximum request body size 1048576 exceeded" in (await _error(large))["error"]


@pytest.mark.parametrize("limit", ["²", "-1", "1.5", "501", "", "0", "9" * 5000])
async def test_a_limit_that_is_not_a_small_number_is_a_400_not_a_500(
    svc: Service, limit: str
) -> None:
    resp = await svc.client.get("/api/calls", params={"limit": limit}, headers=OPERATOR)
    assert resp.status == 400
    assert await _error(resp) == {"error": "limit must be 1 to 500"}


BAD_INPUT: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("GET", "/api/calls/a%00b", {"headers": OPERATOR}, 404, "no such call"),
    ("PUT", "/api/employees/a%00b/extension", {"headers": OPERATOR, "json": {"extension": "1"}},
     404, "unknown employee"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "reason"), BAD_INPUT,
                         ids=["nul-in-entry-id", "nul-in-employee-id"])
async def test_bad_input_is_refused_not_a_500(
    svc: Service, method: str, path: str, kwargs: dict[str, Any], status: int, reason: str
) -> None:
    resp = await svc.client.request(method, path, **kwargs)
    assert (resp.status, await _error(resp)) == (status, {"error": reason})

"""The VPBX command client (aiohttp) against real loopback servers: signing, reuse,
redirects, timeouts, TLS with a CA file, proxies from the environment."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from mango.client import PbxClient, open_pbx_client, pbx_session
from mango.signing import verify
from router.config import ConfigError, load_config

KEY, SALT = "k", "s"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class _Account:
    mango_api_key: str
    mango_api_salt: str
    mango_api_url: str


class Stub:
    """A loopback aiohttp server: every request is recorded, ``handler`` answers it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, dict[str, str], object]] = []  # path, form, peer
        self.server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append((request.raw_path, form, peer))
        return await self.handler(request)

    async def start(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server(ssl=ssl_context)

    def account(self, scheme: str = "http") -> _Account:
        assert self.server is not None
        return _Account(KEY, SALT, f"{scheme}://127.0.0.1:{self.server.port}/vpbx")


@pytest.fixture
async def stub() -> AsyncIterator[Callable[..., Awaitable[Stub]]]:
    made: list[Stub] = []

    async def make(handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> Stub:
        s = Stub(handler)
        await s.start(ssl_context=ssl_context)
        made.append(s)
        return s

    yield make
    for s in made:
        assert s.server is not None
        await s.server.close()


@pytest.fixture
async def client() -> AsyncIterator[PbxClient]:
    async with open_pbx_client() as pbx:
        yield pbx


def answer(body: bytes, status: int = 200) -> Handler:
    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type="application/json")
    return handle


ACCEPTED = answer(b'{"result": 1000}')


async def test_a_command_is_a_signed_form_posted_to_the_base_url_and_its_result_read(
    stub: Callable[..., Awaitable[Stub]], client: PbxClient,
) -> None:
    server = await stub(ACCEPTED)
    payload = {"command_id": "c1", "call_id": "Пётр+&=%", "to_number": "101"}
    got = await client.command(server.account(), "commands/route", payload, within=2.0)
    assert got.accepted
    assert (got.http_status, got.result, got.error) == (200, 1000, None)
    path, form, _ = server.requests[0]
    assert path == "/vpbx/commands/route"  # a base without its slash gets one
    assert set(form) == {"vpbx_api_key", "sign", "json"}
    assert orjson.loads(form["json"]) == payload
    assert verify(KEY, form["json"], SALT, form["sign"])


async def test_kept_alive_connections_are_reused(
    stub: Callable[..., Awaitable[Stub]], client: PbxClient,
) -> None:
    server = await stub(ACCEPTED)
    for i in range(3):
        assert (await client.command(server.account(), "commands/route", {"i": i},
                                     within=2.0)).accepted
    assert len({peer for _, _, peer in server.requests}) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_not_followed_and_says_so(
    stub: Callable[..., Awaitable[Stub]], client: PbxClient, status: int,
) -> None:
    async def redirect(_request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": "/elsewhere"})

    server = await stub(redirect)
    got = await client.command(server.account(), "commands/route", {}, within=2.0)
    assert (got.http_status, got.error, got.accepted) == (status, "redirect", False)
    assert [path for path, _, _ in server.requests] == ["/vpbx/commands/route"]


@pytest.mark.parametrize(("body", "status", "result"), [
    (b'{"result": 3102}', 200, 3102),
    (b"not json", 200, None),
    (b'{"result": true}', 200, None),
    (b'["result", 1000]', 200, None),
    (b'{"result": 1000}', 429, 1000),
    (b"", 500, None),
])
async def test_any_other_answer_is_a_result_that_is_not_accepted(
    stub: Callable[..., Awaitable[Stub]], client: PbxClient,
    body: bytes, status: int, result: int | None,
) -> None:
    server = await stub(answer(body, status))
    got = await client.command(server.account(), "commands/route", {}, within=2.0)
    assert (got.http_status, got.result, got.accepted) == (status, result, False)


async def test_a_silent_server_times_out_within_the_deadline(
    stub: Callable[..., Awaitable[Stub]], client: PbxClient,
) -> None:
    async def hang(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    server = await stub(hang)
    started = asyncio.get_running_loop().time()
    got = await client.command(server.account(), "commands/route", {}, within=0.2)
    assert (got.http_status, got.error) == (None, "timeout")
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_refused_connection_is_a_result_not_an_exception(client: PbxClient) -> None:
    server = TestServer(web.Application(), host="127.0.0.1")
    await server.start_server()
    port = server.port
    await server.close()
    got = await client.command(_Account(KEY, SALT, f"http://127.0.0.1:{port}/vpbx/"),
                               "commands/route", {}, within=2.0)
    assert got.http_status is None
    assert got.error is not None
    assert not got.accepted


async def test_https_is_checked_against_the_ca_file_given_and_else_the_systems(
    stub: Callable[..., Awaitable[Stub]], tmp_path: Path,
) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    server = await stub(ACCEPTED, ssl_context=server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with open_pbx_client(ca_file=ca_file) as trusting:
        assert (await trusting.command(server.account("https"), "commands/route", {},
                                       within=5.0)).accepted
    async with open_pbx_client() as default:  # the system's CAs do not know this one
        got = await default.command(server.account("https"), "commands/route", {}, within=5.0)
    assert got.http_status is None
    assert got.error == "ClientConnectorCertificateError"
    assert len(server.requests) == 1


async def test_a_proxy_named_in_the_environment_carries_the_commands(
    stub: Callable[..., Awaitable[Stub]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = await stub(ACCEPTED)
    assert proxy.server is not None
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server.port}")
    target = _Account(KEY, SALT, "http://pbx.invalid/vpbx/")  # reachable only by the proxy
    async with pbx_session() as session:
        got = await PbxClient(session).command(target, "commands/route", {}, within=2.0)
    assert got.accepted
    assert [path for path, _, _ in proxy.requests] == ["http://pbx.invalid/vpbx/commands/route"]


def test_a_ca_file_that_does_not_exist_stops_the_start_naming_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="MANGO_CA_FILE"):
        load_config(environ={"MANGO_CA_FILE": str(tmp_path / "none.pem")}, env_file=None)
    (tmp_path / "ca.pem").write_text("x")
    config = load_config(environ={"MANGO_CA_FILE": str(tmp_path / "ca.pem")}, env_file=None)
    assert config.mango_ca_file == tmp_path / "ca.pem"


def test_no_proxy_exempts_a_host_from_the_environments_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mango.client import env_proxy

    for name in ("http_proxy", "https_proxy", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    assert env_proxy("https://app.mango-office.ru/vpbx/") == "http://proxy.test:3128"
    assert env_proxy("http://pbx.test/vpbx/") is None  # no HTTP_PROXY
    monkeypatch.setenv("NO_PROXY", "mango-office.ru")
    assert env_proxy("https://app.mango-office.ru/vpbx/") is None


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b'{"result": 1000}', 200, None),
    (b'{"result": 3102}', 200, None),  # answered: the code is about the call, not the API
    (b'{"result": 1000}', 429, "HTTP 429 (result 1000)"),
    (b"", 500, "HTTP 500"),
    (b'{"result": 3102}', 401, "HTTP 401 (result 3102)"),
])
async def test_the_observer_hears_whether_the_api_answered(
    stub: Callable[..., Awaitable[Stub]], body: bytes, status: int, reason: str | None,
) -> None:
    heard: list[tuple[object, str | None]] = []
    server = await stub(answer(body, status))
    account = server.account()
    async with pbx_session() as session:
        client = PbxClient(session, observer=lambda a, r: heard.append((a, r)))
        await client.command(account, "commands/route", {}, within=2.0)
    assert heard == [(account, reason)]


async def test_the_observer_hears_of_a_timeout_a_refused_connection_and_a_redirect(
    stub: Callable[..., Awaitable[Stub]],
) -> None:
    async def hang(_request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    async def moved(_request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    slow, redirecting = await stub(hang), await stub(moved)
    gone = TestServer(web.Application(), host="127.0.0.1")
    await gone.start_server()
    port = gone.port
    await gone.close()
    heard: list[str | None] = []
    async with pbx_session() as session:
        client = PbxClient(session, observer=lambda _a, r: heard.append(r))
        await client.command(slow.account(), "commands/route", {}, within=0.2)
        await client.command(_Account(KEY, SALT, f"http://127.0.0.1:{port}/vpbx/"),
                             "commands/route", {}, within=2.0)
        await client.command(redirecting.account(), "commands/route", {}, within=2.0)
    assert heard == ["no answer: timeout", "no answer: ClientConnectorError",
                     "HTTP 302: a redirect (not followed)"]


async def test_an_observer_that_fails_does_not_break_the_command(
    stub: Callable[..., Awaitable[Stub]],
) -> None:
    def broken(_account: object, _reason: str | None) -> None:
        raise RuntimeError("a bug")

    server = await stub(ACCEPTED)
    async with pbx_session() as session:
        got = await PbxClient(session, observer=broken).command(
            server.account(), "commands/route", {}, within=2.0)
    assert got.accepted

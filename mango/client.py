"""Signed commands to the MANGO OFFICE VPBX API, over aiohttp's client.

One ``ClientSession`` per app (``pbx_session``): keep-alive connections, a TLS
context built once at start-up (the system's CAs, or ``MANGO_CA_FILE``) so no
route's deadline pays for loading a CA store, proxies from the environment
(read once per API URL), no cookie jar (the VPBX API sets none), and no redirects
followed: a command that is answered with a redirect was not applied, and says
so (``error="redirect"``). An observer, when given, hears of every command
whether the API answered (``None``) or why not (a short reason): how the
service knows its PBX's health without this package knowing the service.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import orjson

from mango.signing import sign

logger = logging.getLogger(__name__)

__all__ = ["CommandResult", "PbxAccount", "PbxClient", "PbxObserver", "env_proxy",
           "failure_reason", "open_pbx_client", "pbx_session", "tls_context"]

_CONNECTIONS = 256  # the VPBX API caps commands per account; this is far above it
_KEEPALIVE = 30.0
_SESSION_TIMEOUT = aiohttp.ClientTimeout(total=60)  # config/users/request on a big PBX
# The body goes as bytes already encoded: given a dict, aiohttp builds a FormData,
# which makes a multipart writer (and a uuid4 for its boundary) before it finds it
# needs none; that was 8 % of a serving process's CPU at 1,000 routes a second.
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class PbxAccount(Protocol):
    """What a command needs of an account (``lookup.accounts.Account`` has it)."""

    @property
    def mango_api_key(self) -> str: ...

    @property
    def mango_api_salt(self) -> str: ...

    @property
    def mango_api_url(self) -> str: ...


# Called after every command with the account it was for and None when the API
# answered (2xx, whatever the result code), else a short reason. Must be cheap and
# must not raise: it runs on the routing path.
PbxObserver = Callable[[PbxAccount, str | None], None]


@dataclass(frozen=True, slots=True)
class CommandResult:
    http_status: int | None  # None: no answer (timeout or connection error)
    result: int | None  # the VPBX result code; 1000 = accepted
    error: str | None = None  # "timeout", "redirect", or the failure's type name
    body: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.http_status == 200 and self.result == 1000


def tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """Certificates checked against the system's CAs, or only ``ca_file``'s when given."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)


def pbx_session(*, ca_file: Path | None = None) -> aiohttp.ClientSession:
    """The app's one client session for the VPBX API (call inside the running loop).

    Proxies come from the environment, but through ``PbxClient`` once per API URL:
    aiohttp's ``trust_env`` reads the environment and ``~/.netrc`` on every request
    (in a thread), a few per cent of a serving process under load.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=_CONNECTIONS, keepalive_timeout=_KEEPALIVE,
                                       ssl=tls_context(ca_file)),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=_SESSION_TIMEOUT,
    )


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY``
    exempts its host."""
    parts = urlsplit(url)
    if parts.hostname is None or proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)


def failure_reason(result: CommandResult) -> str | None:
    """None when the API answered (2xx, whatever its result code), else why not."""
    status = result.http_status
    if status is None:
        return "no answer: timeout" if result.error == "timeout" else (
            f"no answer: {result.error}")
    if 200 <= status < 300:
        return None
    if result.error == "redirect":
        return f"HTTP {status}: a redirect (not followed)"
    code = f" (result {result.result})" if result.result is not None else ""
    return f"HTTP {status}{code}"


class PbxClient:
    __slots__ = ("_observer", "_proxies", "_session")

    def __init__(self, session: aiohttp.ClientSession, *,
                 observer: PbxObserver | None = None) -> None:
        self._session = session
        self._observer = observer
        self._proxies: dict[str, str | None] = {}  # API URL -> its proxy, from the env

    async def command(
        self, account: PbxAccount, command: str, payload: dict[str, Any], *, within: float
    ) -> CommandResult:
        """Send one signed command; every failure becomes the result, never an exception."""
        raw = orjson.dumps(payload).decode()
        key = account.mango_api_key
        form = urlencode({"vpbx_api_key": key, "sign": sign(key, raw, account.mango_api_salt),
                          "json": raw}).encode()
        base = account.mango_api_url
        url = (base if base.endswith("/") else base + "/") + command
        if base not in self._proxies:
            self._proxies[base] = env_proxy(base)
        try:
            async with self._session.post(
                url, data=form, headers=_FORM, allow_redirects=False, proxy=self._proxies[base],
                timeout=aiohttp.ClientTimeout(total=within),
            ) as resp:
                status = resp.status
                text = await resp.read()
        except TimeoutError:
            result = CommandResult(None, None, "timeout")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            result = CommandResult(None, None, type(exc).__name__)
        except Exception as exc:  # a failed command must never take its caller down
            logger.exception("PBX command failed unexpectedly", extra={"command": command})
            result = CommandResult(None, None, type(exc).__name__)
        else:
            result = _read_answer(status, text)
        if self._observer is not None:
            try:
                self._observer(account, failure_reason(result))
            except Exception:  # what watches the commands must never break one
                logger.exception("PBX command observer failed")
        return result


def _read_answer(status: int, text: bytes) -> CommandResult:
    if 300 <= status < 400:
        return CommandResult(status, None, "redirect")
    body: Any = None
    try:
        body = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        body = None
    result = body.get("result") if isinstance(body, dict) else None
    return CommandResult(
        status,
        result if isinstance(result, int) and not isinstance(result, bool) else None,
        body=body if isinstance(body, dict) else None,
    )


@asynccontextmanager
async def open_pbx_client(*, ca_file: Path | None = None) -> AsyncIterator[PbxClient]:
    """A client on a session of its own, for one-shot commands (``sync``, tests)."""
    async with pbx_session(ca_file=ca_file) as session:
        yield PbxClient(session)

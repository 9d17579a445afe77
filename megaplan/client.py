"""An async Megaplan API v3 client: auth, paging, retries and a rate cap.

The CRM is slow and rate-limited, so this client is for sync and write-back
only; nothing on the routing path calls it. An observer, when given, hears of
every API call whether the CRM answered (``None``) or why not (a short reason,
no secrets): how the service knows the CRM's health without this package
knowing the service.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson
from yarl import URL

from megaplan import mapping as mp
from megaplan.backoff import backoff_delay, retry_after_seconds
from megaplan.credentials import MegaplanCredentials
from megaplan.errors import (
    MappingError,
    MegaplanAuthError,
    MegaplanError,
    MegaplanUnavailableError,
    MegaplanUncertainError,
)
from megaplan.query import encode_query
from megaplan.rate_limit import RateLimiter

__all__ = ["PAGE_LIMIT", "CrmObserver", "MegaplanClient"]

logger = logging.getLogger(__name__)

PAGE_LIMIT = 100  # the v3 maximum
AUTH_PATH = "/api/v3/auth/access_token"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures before any byte of the request left: the CRM cannot have applied it.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_Response = tuple[int, Mapping[str, str], bytes]
# Refusals of one request as it is: the CRM answered, it works.
_ANSWERED = frozenset({400, 404, 405, 409, 410, 413, 422})
_REASON_LENGTH = 200
# Credentials refused this recently are refused again without a token request: the
# requests queued behind the refused one (an outbox claims hundreds) fail at once.
_REFUSED_AGAIN_S = 5.0

# Called after every API call with None when the CRM answered (a refusal of the
# request as it is counts: 400, 404, 409, 422…), else a short reason (no answer,
# 5xx, 429 to the last retry, 401/403: the credentials). Must not raise.
CrmObserver = Callable[[str | None], None]


class MegaplanClient:
    """One ``aiohttp.ClientSession`` per instance; use ``async with`` or start()/close()."""

    def __init__(
        self,
        credentials: MegaplanCredentials,
        *,
        rate_per_second: float | None = 3.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        retry_after_cap: float = 120.0,
        request_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        rng: random.Random | None = None,
        observer: CrmObserver | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._credentials = credentials
        self._limiter = RateLimiter(rate_per_second)
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._retry_after_cap = retry_after_cap
        # a connect that times out on its own is known unsent, so even a create retries it
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout, sock_connect=min(connect_timeout, request_timeout)
        )
        self._rng = rng or random.Random()
        self._observer = observer
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()
        self._refused: tuple[float, MegaplanAuthError] | None = None  # (when, the refusal)
        self.request_count = 0

    def __repr__(self) -> str:
        return f"MegaplanClient(base_url={self._credentials.base_url!r})"

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._token = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- transport -----------------------------------------------------------
    def _scrub(self, text: str) -> str:
        """Belt and braces: no secret leaves this client inside a message."""
        for secret in (self._credentials.password, self._token):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _error(
        self, status: int, body: bytes, cls: type[MegaplanError] = MegaplanError
    ) -> MegaplanError:
        errors: list[dict[str, Any]] = []
        try:
            envelope = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            envelope = None
        meta = envelope.get("meta") if isinstance(envelope, dict) else None
        raw = meta.get("errors") if isinstance(meta, dict) else None
        if isinstance(raw, list):
            errors = [e for e in raw if isinstance(e, dict)]
        if not errors:
            errors = [{"message": f"HTTP {status}"}]
        clean = [
            {k: self._scrub(v) if isinstance(v, str) else v for k, v in e.items()} for e in errors
        ]
        return cls(status, clean)

    async def _send_once(
        self, method: str, url: URL, headers: Mapping[str, str], body: Any
    ) -> _Response:
        if self._session is None:
            raise RuntimeError("MegaplanClient is not started (use `async with` or start())")
        await self._limiter.acquire()
        self.request_count += 1
        kwargs: dict[str, Any] = {}
        if isinstance(body, aiohttp.FormData):
            kwargs["data"] = body
        elif body is not None:
            kwargs["data"] = orjson.dumps(body)
        async with self._session.request(method, url, headers=headers, **kwargs) as resp:
            payload = await resp.read()
            return resp.status, resp.headers, payload

    async def _send(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: Any = None,
        make_body: Callable[[], Any] | None = None,
        *,
        idempotent: bool,
    ) -> _Response:
        """Send, retrying only what is safe to send again.

        A 429 (after its Retry-After) and a connection that could not be made are
        retried for every call: the CRM certainly did not apply those. Timeouts,
        connections dropped after sending and 5xx are retried only when
        ``idempotent``; otherwise MegaplanUncertainError is raised at once.
        """
        last_status = 0
        for attempt in range(self._max_retries + 1):
            delay: float | None = None
            try:
                status, resp_headers, payload = await self._send_once(
                    method, url, headers, make_body() if make_body else body
                )
            except _NOT_SENT as e:
                last_status = 0
                self._log_failure(method, url, type(e).__name__, attempt)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
                last_status = 0
                self._log_failure(method, url, type(e).__name__, attempt)
                if not idempotent:
                    raise self._uncertain(method, url, type(e).__name__) from e
            else:
                if status not in _RETRY_STATUSES:
                    return status, resp_headers, payload
                last_status = status
                self._log_failure(method, url, f"answered {status}", attempt)
                if status != 429 and not idempotent:
                    raise self._error(status, payload, MegaplanUncertainError)
                delay = retry_after_seconds(resp_headers, cap=self._retry_after_cap)
                if attempt == self._max_retries:
                    raise self._error(status, payload, MegaplanUnavailableError)
            if attempt == self._max_retries:
                break
            if delay is None:
                delay = backoff_delay(
                    attempt, base=self._backoff_base, cap=self._backoff_cap, rng=self._rng
                )
            await asyncio.sleep(delay)
        raise MegaplanUnavailableError(
            last_status,
            [{"message": f"{method} {url.path}: gave up after {self._max_retries + 1} attempts"}],
        )

    @staticmethod
    def _log_failure(method: str, url: URL, what: str, attempt: int) -> None:
        logger.warning("Megaplan %s %s: %s, attempt %d", method, url.path, what, attempt + 1)

    @staticmethod
    def _uncertain(method: str, url: URL, what: str) -> MegaplanUncertainError:
        """No answer to judge by (status 0): the create may or may not have been applied."""
        message = f"{method} {url.path}: {what}; it may or may not have been applied"
        return MegaplanUncertainError(0, [{"message": message}])

    async def _fetch_token(self) -> str:
        url = URL(self._credentials.base_url + AUTH_PATH, encoded=True)

        def form() -> aiohttp.FormData:
            return aiohttp.FormData(
                {
                    "username": self._credentials.username,
                    "password": self._credentials.password,
                    "grant_type": "password",
                }
            )

        # a second token is harmless, so the token request is retried like a read
        status, _, payload = await self._send("POST", url, {}, make_body=form, idempotent=True)
        if status != 200:
            raise self._error(status, payload, MegaplanAuthError)
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise MegaplanError(status, [{"message": "token answer is not JSON"}]) from None
        if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
            doc = doc["data"]  # tolerate an enveloped answer
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise MegaplanError(status, [{"message": "token answer has no access_token"}])
        logger.info("Megaplan: got an access token for %s", self._credentials.base_url)
        return token

    async def _current_token(self, stale: str | None = None) -> str:
        """The token to use; ``stale`` is one the server refused, so fetch a new one."""
        async with self._auth_lock:
            if self._token is None or self._token == stale:
                self._token = None
                # credentials just refused are refused again without asking: the requests
                # waiting for a token must not each try a wrong password (a CRM may lock
                # the user out after a few)
                if self._refused is not None and \
                        time.monotonic() - self._refused[0] < _REFUSED_AGAIN_S:
                    refused = self._refused[1]  # a copy: the kept one gathers no frames
                    raise MegaplanAuthError(refused.status, refused.errors)
                try:
                    self._token = await self._fetch_token()
                except MegaplanAuthError as exc:
                    self._refused = (time.monotonic(), exc)
                    raise
                self._refused = None
            return self._token

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        plain_query: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> tuple[Any, Mapping[str, Any]]:
        """One API call; returns (data, meta). A 401 renews the token once, unseen.

        ``idempotent`` says whether sending the call twice does no harm, so it can
        be retried on timeouts, dropped connections and 5xx; None means by the
        method (a POST is not). A call that is not idempotent (a create) raises
        MegaplanUncertainError instead of being re-sent when it may have been
        applied; 429s, connections never made and 401s are retried for any call.
        """
        if self._observer is None:
            return await self._request(method, path, params=params, json=json,
                                       plain_query=plain_query, idempotent=idempotent)
        try:
            answer = await self._request(method, path, params=params, json=json,
                                         plain_query=plain_query, idempotent=idempotent)
        except MegaplanError as exc:
            answered = exc.status in _ANSWERED and not isinstance(exc, MegaplanAuthError)
            self._observe(None if answered else str(exc))
            raise
        except Exception as exc:
            self._observe(f"{type(exc).__name__}: {exc}")
            raise
        self._observe(None)
        return answer

    def _observe(self, reason: str | None) -> None:
        assert self._observer is not None
        if reason is not None:
            reason = self._scrub(" ".join(reason.split()))[:_REASON_LENGTH]
        try:
            self._observer(reason)
        except Exception:  # what watches the calls must never break one
            logger.exception("Megaplan call observer failed")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        plain_query: Mapping[str, str] | None,
        idempotent: bool | None,
    ) -> tuple[Any, Mapping[str, Any]]:
        if idempotent is None:
            idempotent = method.upper() in _IDEMPOTENT_METHODS
        if plain_query is not None:
            url = URL(self._credentials.base_url + path).with_query(dict(plain_query))
        else:
            url = URL(self._credentials.base_url + path + encode_query(params), encoded=True)
        token = await self._current_token()
        for renewed in (False, True):
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            if json is not None:
                headers["Content-Type"] = "application/json"
            status, _, payload = await self._send(
                method, url, headers, json, idempotent=idempotent
            )
            if status == 401 and not renewed:
                logger.info("Megaplan: token refused, getting a new one")
                token = await self._current_token(stale=token)
                continue
            if status >= 300:
                raise self._error(status, payload)
            break
        try:
            envelope = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            raise MegaplanError(status, [{"message": "answer is not JSON"}]) from None
        if not isinstance(envelope, dict):
            raise MegaplanError(status, [{"message": "answer is not an envelope"}])
        meta = envelope.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        if meta.get("errors"):
            raise self._error(int(meta.get("status") or status), payload)
        return envelope.get("data"), meta

    async def iter_list(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        fields: Iterable[str] | None = None,
        limit: int = PAGE_LIMIT,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of a list, following ``pageAfter`` until a short or last page."""
        query: dict[str, Any] = dict(params or {})
        query["limit"] = limit
        if fields is not None:
            query["fields"] = list(fields)
            query["onlyRequestedFields"] = True
        while True:
            data, meta = await self.request("GET", path, params=query)
            if not isinstance(data, list):
                raise MegaplanError(200, [{"message": f"{path}: data is not a list"}])
            for obj in data:
                if isinstance(obj, dict):
                    yield obj
            pagination = meta.get("pagination")
            more = pagination.get("hasMoreNext") if isinstance(pagination, dict) else None
            if len(data) < limit or more is False or not isinstance(data[-1], dict):
                return
            query["pageAfter"] = mp.page_after(data[-1])

    # --- reads -----------------------------------------------------------------
    async def employees(self) -> list[mp.Employee]:
        out: list[mp.Employee] = []
        async for obj in self.iter_list("/api/v3/employee", fields=mp.EMPLOYEE_LIST_FIELDS):
            try:
                out.append(mp.parse_employee(obj))
            except MappingError as exc:
                logger.warning("Megaplan: skipping an employee: %s", exc)
        return out

    async def contractors(
        self,
        fields: Iterable[str] | None = None,
        since: datetime | None = None,
        extra_fields: Sequence[str] = (),
    ) -> AsyncIterator[mp.Client]:
        """Clients (people and companies); with ``since``, newest first down to it.

        Records updated exactly at ``since`` are returned again: re-reading one is
        harmless, missing one is not.
        """
        wanted = [*(fields if fields is not None else mp.CLIENT_LIST_FIELDS), *extra_fields]
        params: dict[str, Any] = {}
        if since is not None:
            params["sortBy"] = mp.sort_by_time_updated_desc()
        async for obj in self.iter_list("/api/v3/contractor", params, fields=wanted):
            try:
                client = mp.parse_client(obj, extra_fields)
            except MappingError as exc:
                logger.warning("Megaplan: skipping a contractor: %s", exc)
                continue
            if (
                since is not None
                and client.time_updated is not None
                and (client.time_updated < since)
            ):
                return
            yield client

    async def find_contractors_by_phone(self, phone: str) -> list[mp.Client]:
        """Clients (dropped ones too) with this phone in any written form, by v3 ``q``.

        How to find what a create that raised MegaplanUncertainError made.
        """
        out: list[mp.Client] = []
        async for obj in self.iter_list(
            "/api/v3/contractor", {"q": phone}, fields=mp.CLIENT_LIST_FIELDS
        ):
            try:
                out.append(mp.parse_client(obj))
            except MappingError as exc:
                logger.warning("Megaplan: skipping a contractor: %s", exc)
        return out

    async def extra_fields(self) -> list[mp.ExtraField]:
        data, _ = await self.request("GET", "/api/v3/contractorHuman/extraFields")
        return [mp.parse_extra_field(o) for o in _as_list(data)]

    async def programs(self) -> list[mp.Program]:
        return [mp.parse_program(o) async for o in self.iter_list("/api/v3/program")]

    async def program_entry_points(self, program_id: str) -> list[mp.ProgramState]:
        data, _ = await self.request("GET", f"/api/v3/program/{program_id}/entryPoints")
        return [mp.parse_program_state(o) for o in _as_list(data)]

    async def client_deals(self, client_id: str) -> list[mp.Deal]:
        """The client's deals with name, state type and manager (open: ``is_open``)."""
        return [
            mp.parse_deal(o) async for o in self.iter_list(f"/api/v3/contractor/{client_id}/deals")
        ]

    async def call_route(self, phone: str) -> mp.CallRoute:
        data, _ = await self.request("GET", "/api/v3/callRoute", plain_query={"phone": phone})
        return mp.parse_call_route(data)

    # --- writes ----------------------------------------------------------------
    async def create_client(
        self,
        *,
        name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        phones: Sequence[str] = (),
        responsible_ids: Sequence[str] = (),
        extra: Mapping[str, str] | None = None,
    ) -> mp.Client:
        """Not idempotent: may raise MegaplanUncertainError (then look the phone up)."""
        return await self._write_client(
            "/api/v3/contractorHuman", idempotent=False, first_name=first_name,
            last_name=last_name, name=name, phones=phones, responsible_ids=responsible_ids,
            extra=extra)

    async def update_client(
        self,
        client_id: str,
        *,
        name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        phones: Sequence[str] | None = None,
        responsible_ids: Sequence[str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> mp.Client:
        """Idempotent (it sets fields), so retried like a read."""
        return await self._write_client(
            f"/api/v3/contractorHuman/{client_id}", idempotent=True, first_name=first_name,
            last_name=last_name, name=name, phones=phones, responsible_ids=responsible_ids,
            extra=extra)

    async def _write_client(self, path: str, *, idempotent: bool, **fields: Any) -> mp.Client:
        """Create (the collection path) or update (an object path): the same body."""
        data, _ = await self.request(
            "POST", path, json=mp.contractor_human_payload(**fields), idempotent=idempotent
        )
        return mp.parse_client(data)

    async def create_deal(
        self,
        *,
        program_id: str,
        state_id: str | None,
        contractor_id: str,
        manager_id: str,
        name: str,
        contractor_kind: mp.ClientKind = "human",
    ) -> mp.Deal:
        """Not idempotent: may raise MegaplanUncertainError (then see client_deals)."""
        body = mp.deal_payload(
            program_id=program_id,
            state_id=state_id,
            contractor_id=contractor_id,
            manager_id=manager_id,
            name=name,
            contractor_kind=contractor_kind,
        )
        data, _ = await self.request("POST", "/api/v3/deal", json=body, idempotent=False)
        return mp.parse_deal(data)

    async def record_calls(self, calls: Sequence[mp.CallInfo]) -> None:
        """Idempotent on the CRM side by ``providerId``, so a retry never doubles a call."""
        if calls:
            body = [mp.call_info_payload(c) for c in calls]
            await self.request("POST", "/api/v3/callInfo/history", json=body, idempotent=True)

    async def add_comment(self, contractor_id: str, text: str) -> str | None:
        """Not idempotent: may raise MegaplanUncertainError (a second post is a second comment)."""
        data, _ = await self.request(
            "POST",
            f"/api/v3/contractor/{contractor_id}/comments",
            json=mp.comment_payload(text),
            idempotent=False,
        )
        oid = data.get("id") if isinstance(data, dict) else None
        return str(oid) if oid is not None else None


def _as_list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise MegaplanError(200, [{"message": "data is not a list"}])
    return data

"""The PBX's notifications (PROTOCOLS §1): check, journal, start routing, answer.

Order matters: the account is found by its key and the signature checked
before anything is read or stored (403 otherwise); malformed input is a 400
with a reason; the routing trigger is started before the journal write, so
the decision never waits for the database; the 200 waits for the journal, so
an answered event is durable. Refusals are raised as ``ApiError`` (rendered by
``router.errors``): only the error path pays for the exception.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from automation.contacts import makes_contact
from lookup.accounts import Account
from lookup.journal import JournalEntry
from mango.events import BadRequest, CallEvent, check_fields
from mango.form import parse_form
from mango.signing import verify
from router.batcher import RowRefused
from router.errors import ApiError
from router.keys import ACCOUNTS, AUTOMATION, CONTACTS, JOURNAL, METRICS, ROUTER

logger = logging.getLogger(__name__)

__all__ = ["setup_webhooks"]

_ACCEPTED = b'{"result": 1000}'
_KINDS = {"/mango/events/call": "call", "/mango/events/summary": "summary",
          "/mango/events/recording": "recording", "/mango/events/dtmf": "dtmf",
          "/mango/result/{command}": "result"}


def setup_webhooks(app: web.Application) -> None:
    for path, kind in _KINDS.items():  # the kind is bound here, not parsed per request
        app.router.add_post(path, partial(handle_event, kind=kind))
    app.router.add_post("/mango/ping", handle_ping)


async def _signed_json(request: web.Request) -> tuple[Account, dict[str, Any], str]:
    """The account and the parsed JSON of a signed request; ``ApiError`` refuses it."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise ApiError(400, "body must be application/x-www-form-urlencoded")
    try:  # three known fields: parsed directly, cheaper than request.post()'s multidict
        form = parse_form(await request.read())
    except ValueError:  # not UTF-8, or percent-escapes that are not
        raise ApiError(400, "body is not a form") from None
    key, sign, raw = form.get("vpbx_api_key"), form.get("sign"), form.get("json")
    if not isinstance(key, str) or not isinstance(sign, str) or not isinstance(raw, str):
        raise ApiError(400, "vpbx_api_key, sign and json are required form fields")
    account = request.app[ACCOUNTS].by_key(key)
    if account is None or not verify(key, raw, account.mango_api_salt, sign):
        raise ApiError(403, "unknown vpbx_api_key or bad sign")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "json is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "json must be an object")
    if "\\u0000" in raw:
        raise ApiError(400, "json must not contain NUL characters")
    return account, body, raw


async def handle_ping(request: web.Request) -> web.Response:
    await _signed_json(request)
    return web.json_response({"result": 1000})


async def handle_event(request: web.Request, *, kind: str) -> web.Response:
    received_at = time.monotonic()
    arrived = time.time()  # before the journal's own time of it (the automation's marks)
    account, body, raw = await _signed_json(request)
    router = request.app[ROUTER]
    call: CallEvent | None = None
    try:
        if kind == "call":
            call = CallEvent(body)
            if call.is_trigger and account.settings.route_to_responsible:
                router.start(account, call, received_at)
            elif call.call_state == "Disconnected" and call.location == "ivr":
                router.ended(account.id, call.call_id)
            entry = JournalEntry(account.id, kind, call.entry_id, call.call_id, call.seq,
                                 call.call_state, call.location, raw)
        else:
            entry_id, _command = check_fields(kind, body)
            if kind == "summary" and entry_id:
                router.ended(account.id, entry_id)
            entry = JournalEntry(account.id, kind, entry_id, None, None, None, None, raw)
    except BadRequest as exc:
        raise ApiError(400, str(exc)) from None
    request.app[METRICS].event(account.name, kind).inc()
    try:
        await request.app[JOURNAL].put(entry)  # TimeoutError: see app._JOURNAL_WAIT
    except TimeoutError:
        logger.error("journal write is late; answering 503", extra={"account": account.name})
        raise ApiError(503, "journal unavailable, retry later") from None
    except RowRefused as exc:  # e.g. a number beyond what PostgreSQL's jsonb holds
        raise ApiError(400, f"json cannot be stored: {exc}") from None
    if entry.entry_id:  # journaled: the automation plans from the journal
        automation = request.app[AUTOMATION]
        automation.seen(account.id, entry.entry_id,
                        plan_now=automation.worth_planning(account.id, kind, call), at=arrived)
        if (account.settings.route_unknown_to_last_contact.enabled
                and makes_contact(kind, call, body)):  # who talked to whom, for call-backs
            request.app[CONTACTS].seen(account.id, entry.entry_id)
    return web.Response(body=_ACCEPTED, content_type="application/json")

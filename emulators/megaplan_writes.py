"""The emulator's write endpoints; every body is kept in ``state.writes``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from emulators.megaplan_http import STATE_KEY, ApiError, json_response, read_json_body
from emulators.megaplan_render import client_json, date_json, envelope, ref, state_json
from emulators.megaplan_store import (
    CT_COMPANY,
    CT_EMPLOYEE,
    CT_HUMAN,
    ClientRow,
    MegaplanState,
    Ref,
)

__all__ = ["add_comment", "call_history", "create_deal", "create_human", "update_human"]

_CALL_TYPES = frozenset({"in", "out", "miss"})


async def _object_body(request: web.Request) -> dict[str, Any]:
    body = await read_json_body(request)
    if not isinstance(body, dict):
        raise ApiError(422, "body must be a JSON object")
    return body


def _ref_id(obj: Any, field: str) -> tuple[str, str]:
    if not isinstance(obj, Mapping):
        raise ApiError(422, "must be an object with contentType and id", field)
    ct, oid = obj.get("contentType"), obj.get("id")
    if isinstance(oid, int) and not isinstance(oid, bool):
        oid = str(oid)
    if not isinstance(ct, str) or not isinstance(oid, str) or not oid:
        raise ApiError(422, "must be an object with contentType and id", field)
    return ct, oid


def _responsibles(state: MegaplanState, raw: Any) -> list[Ref]:
    if not isinstance(raw, list):
        raise ApiError(422, "must be a list", "responsibles")
    out: list[Ref] = []
    for item in raw:
        ct, oid = _ref_id(item, "responsibles")
        known = (
            oid in state.employees
            if ct == CT_EMPLOYEE
            else oid in state.clients
            if ct in (CT_HUMAN, CT_COMPANY)
            else ct == "Group"
        )
        if not known:
            raise ApiError(422, f"unknown responsible {ct} {oid}", "responsibles")
        out.append((ct, oid))
    return out


def _phones(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        raise ApiError(422, "must be a list", "contactInfo")
    phones: list[tuple[bool, str]] = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), str):
            raise ApiError(422, "each entry needs a value", "contactInfo")
        if item.get("type") == "phone":
            phones.append((item.get("isMain") is not True, item["value"]))
    return [p for _, p in sorted(phones, key=lambda x: x[0])]


def _extra(state: MegaplanState, body: Mapping[str, Any]) -> dict[str, str]:
    names = {name for name, _ in state.extra_fields}
    return {k: str(v) for k, v in body.items() if k in names and v is not None}


def _apply(state: MegaplanState, row: ClientRow, body: Mapping[str, Any]) -> None:
    if "firstName" in body or "lastName" in body:
        row.first_name = str(body.get("firstName", row.first_name) or "")
        row.last_name = str(body.get("lastName", row.last_name) or "")
        row.name = f"{row.first_name} {row.last_name}".strip()
    if isinstance(body.get("name"), str) and body["name"].strip():
        row.name = body["name"].strip()
    if "contactInfo" in body:
        row.phones = _phones(body["contactInfo"])
    if "responsibles" in body:
        row.responsibles = _responsibles(state, body["responsibles"])
    row.extra.update(_extra(state, body))


async def create_human(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _object_body(request)
    stamp = state.now()
    row = ClientRow(id="0", kind="human", name="", time_created=stamp, time_updated=stamp)
    _apply(state, row, body)
    if not row.name:
        raise ApiError(422, "firstName or name is required", "firstName")
    state.create_client(row)
    return json_response(envelope(client_json(row)))


async def update_human(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _object_body(request)
    old = state.clients.get(request.match_info["id"])
    if old is None or old.kind != "human":
        raise ApiError(404, "contractorHuman not found")
    draft = ClientRow(
        id=old.id,
        kind="human",
        name=old.name,
        first_name=old.first_name,
        last_name=old.last_name,
        phones=list(old.phones),
        responsibles=list(old.responsibles),
        is_dropped=old.is_dropped,
        time_created=old.time_created,
        extra=dict(old.extra),
    )
    _apply(state, draft, body)  # validate fully before changing anything
    draft.time_updated = state.now()
    state.put_client(draft)
    state.applied["client_updated"] += 1
    return json_response(envelope(client_json(draft)))


async def create_deal(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _object_body(request)
    _, program_id = _ref_id(body.get("program"), "program")
    program = state.programs.get(program_id)
    if program is None:
        raise ApiError(422, f"unknown program {program_id}", "program")
    if body.get("state") is None:
        entry = [s for s in program.states if s.is_entry]
        deal_state = entry[0] if entry else program.states[0]
    else:
        _, state_id = _ref_id(body.get("state"), "state")
        found = [s for s in program.states if s.id == state_id]
        if not found:
            raise ApiError(422, f"state {state_id} is not in program {program_id}", "state")
        deal_state = found[0]
    _, contractor_id = _ref_id(body.get("contractor"), "contractor")
    contractor = state.clients.get(contractor_id)
    if contractor is None:
        raise ApiError(422, f"unknown contractor {contractor_id}", "contractor")
    _, manager_id = _ref_id(body.get("manager"), "manager")
    if manager_id not in state.employees:
        raise ApiError(422, f"unknown employee {manager_id}", "manager")
    deal = state.add_deal(
        {
            "contentType": "Deal",
            "name": str(body.get("name") or ""),
            "program": ref("Program", program.id),
            "state": state_json(deal_state),
            "contractor": ref(contractor.content_type, contractor.id),
            "manager": ref(CT_EMPLOYEE, manager_id),
            "timeCreated": date_json(state.now()),
        }
    )
    return json_response(envelope(deal))


async def call_history(request: web.Request) -> web.Response:
    """Idempotent by ``providerId``: a repeated call updates the stored one, never doubles."""
    state = request.app[STATE_KEY]
    if not state.call_history:
        raise ApiError(404, "not found")
    body = await read_json_body(request)
    items = [body] if isinstance(body, dict) else body
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ApiError(422, "body must be a CallInfo object or a list of them")
    for item in items:
        if not isinstance(item.get("providerId"), str) or not item["providerId"]:
            raise ApiError(422, "providerId is required", "providerId")
        if item.get("type") not in _CALL_TYPES:
            raise ApiError(422, "type must be in, out or miss", "type")
    stored = [state.record_call(i) for i in items]
    return json_response(envelope(stored))


async def add_comment(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await _object_body(request)
    contractor = state.clients.get(request.match_info["id"])
    if contractor is None:
        raise ApiError(404, "contractor not found")
    content = body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ApiError(422, "content is required", "content")
    comment = state.add_comment(
        {
            "contentType": "Comment",
            "content": content,
            "subject": ref(contractor.content_type, contractor.id),
            "timeCreated": date_json(state.now()),
        }
    )
    return json_response(envelope(comment))

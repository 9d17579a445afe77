"""The emulator's read endpoints: employees, contractors, programs, deals, callRoute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web

from emulators.megaplan_http import STATE_KEY, ApiError, json_query, json_response
from emulators.megaplan_paging import (
    Page,
    cursor_id,
    page_from,
    read_limit,
    start_in_list,
    start_in_sorted_ints,
)
from emulators.megaplan_phones import normalise_digits
from emulators.megaplan_render import (
    client_json,
    employee_json,
    envelope,
    program_json,
    ref,
    select_fields,
    state_json,
)
from emulators.megaplan_store import CT_EMPLOYEE, ClientRow, MegaplanState

__all__ = [
    "call_route",
    "contractor_card",
    "contractor_deals",
    "contractor_list",
    "employee_list",
    "extra_fields",
    "human_list",
    "program_entry_points",
    "program_list",
]


def _fields(query: dict[str, Any]) -> list[str] | None:
    fields = query.get("fields")
    if fields is None:
        return None
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ApiError(422, "fields must be a list of names", "fields")
    return fields


def _sort_updated(query: dict[str, Any]) -> bool | None:
    """None: by id; True/False: by timeUpdated desc/asc."""
    sort_by = query.get("sortBy")
    if not sort_by:
        return None
    if not isinstance(sort_by, list) or not isinstance(sort_by[0], dict):
        raise ApiError(422, "sortBy must be a list of SortField", "sortBy")
    first = sort_by[0]
    name = first.get("fieldName")
    if name == "id":
        return None
    if name != "timeUpdated":
        raise ApiError(422, f"cannot sort by {name!r}", "sortBy")
    return bool(first.get("desc", False))


def _client_rows(state: MegaplanState, query: dict[str, Any]) -> tuple[Iterator[ClientRow], int]:
    after = cursor_id(query)
    q = query.get("q")
    desc = _sort_updated(query)
    if isinstance(q, str) and q.strip():
        q = q.strip()
        digits = normalise_digits(q)
        if len(digits) >= 5:
            found = state.clients_by_phone(digits)
        else:
            found = [state.clients[str(k)] for k in state.client_ids_by_id()]
            found = [r for r in found if q.casefold() in r.name.casefold()]
        if desc is not None:
            found.sort(key=lambda r: (r.time_updated, int(r.id)), reverse=desc)
        ids = [r.id for r in found]
        return iter(found[start_in_list(ids, after) :]), len(found)
    total = len(state.clients)
    if desc is None:
        keys = state.client_ids_by_id()
        start = start_in_sorted_ints(keys, after)
        return (state.clients[str(keys[i])] for i in range(start, len(keys))), total
    ordered, pos = state.client_ids_by_updated()
    n = len(ordered)
    if after is not None and after not in pos:
        raise ApiError(422, "pageAfter object not found", "pageAfter")
    if desc:
        start = 0 if after is None else pos[after] + 1
        return (state.clients[ordered[i]] for i in range(start, n)), total
    start = 0 if after is None else n - pos[after]
    return (state.clients[ordered[n - 1 - i]] for i in range(start, n)), total


def _client_page(request: web.Request, humans_only: bool) -> web.Response:
    state = request.app[STATE_KEY]
    query = json_query(request)
    limit = read_limit(query)
    fields = _fields(query)
    rows, total = _client_rows(state, query)
    keep = (lambda r: r.kind == "human") if humans_only else None
    page, pagination = page_from(rows, limit, total, keep)
    data = [select_fields(client_json(r), fields) for r in page]
    return json_response(envelope(data, pagination=pagination))


async def contractor_list(request: web.Request) -> web.Response:
    return _client_page(request, humans_only=False)


async def human_list(request: web.Request) -> web.Response:
    return _client_page(request, humans_only=True)


def _client(state: MegaplanState, oid: str) -> ClientRow:
    row = state.clients.get(oid)
    if row is None:
        raise ApiError(404, f"contractor {oid} not found")
    return row


async def contractor_card(request: web.Request) -> web.Response:
    row = _client(request.app[STATE_KEY], request.match_info["id"])
    return json_response(envelope(client_json(row)))


def _list_page(request: web.Request, objs: list[dict[str, Any]]) -> Page:
    query = json_query(request)
    limit = read_limit(query)
    start = start_in_list([o["id"] for o in objs], cursor_id(query))
    fields = _fields(query)
    page, pagination = page_from(iter(objs[start:]), limit, len(objs))
    return [select_fields(o, fields) for o in page], pagination


async def employee_list(request: web.Request) -> web.Response:
    objs = [employee_json(e) for e in request.app[STATE_KEY].employee_list()]
    data, pagination = _list_page(request, objs)
    return json_response(envelope(data, pagination=pagination))


async def extra_fields(request: web.Request) -> web.Response:
    data = [
        {
            "contentType": "ContractorExtraField",
            "id": str(i),
            "name": name,
            "hrName": hr_name,
            "type": "StringField",
        }
        for i, (name, hr_name) in enumerate(request.app[STATE_KEY].extra_fields, start=1)
    ]
    return json_response(envelope(data))


async def program_list(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    objs = [program_json(p) for p in sorted(state.programs.values(), key=lambda p: int(p.id))]
    data, pagination = _list_page(request, objs)
    return json_response(envelope(data, pagination=pagination))


async def program_entry_points(request: web.Request) -> web.Response:
    program = request.app[STATE_KEY].programs.get(request.match_info["id"])
    if program is None:
        raise ApiError(404, "program not found")
    return json_response(envelope([state_json(s) for s in program.states if s.is_entry]))


async def contractor_deals(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    oid = _client(state, request.match_info["id"]).id
    objs = [d for d in state.deals.values() if d["contractor"]["id"] == oid]
    data, pagination = _list_page(request, objs)
    return json_response(envelope(data, pagination=pagination))


async def call_route(request: web.Request) -> web.Response:
    """The per-call lookup peers do, by the routing rules of PROTOCOLS §4."""
    state = request.app[STATE_KEY]
    phone = request.query.get("phone") or str(json_query(request).get("phone") or "")
    digits = normalise_digits(phone)
    if not digits:
        raise ApiError(422, "phone is required", "phone")
    answer: dict[str, Any] = {
        "contentType": "CallRoute",
        "phone": digits,
        "client": None,
        "employee": None,
        "extension": None,
        "reason": None,
    }
    clients = [r for r in state.clients_by_phone(digits) if not r.is_dropped]
    if not clients:
        answer["reason"] = "no_client"
        return json_response(envelope(answer))
    client = clients[0]
    answer["client"] = ref(client.content_type, client.id)
    for content_type, oid in client.responsibles:
        employee = state.employees.get(oid) if content_type == CT_EMPLOYEE else None
        if employee is not None and employee.active:
            answer["employee"] = ref(CT_EMPLOYEE, employee.id)
            answer["extension"] = employee.extension or None
            answer["reason"] = None if employee.extension else "no_extension"
            return json_response(envelope(answer))
    answer["reason"] = "no_active_responsible"
    return json_response(envelope(answer))

"""``/calls`` and ``/calls/{entry_id}``: the account's calls and one call's story.

The list is the newest calls first, fifty a page, with an "older" cursor; a
number searches both ends (its canonical key). One call's page is its timeline:
the PBX's notifications, the routing decision with the PBX's answer, and each
CRM action with its state and a link to what it made in Megaplan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from lookup.calls import BadCursor, calls_page, find_call
from lookup.phones import phone_key
from router.keys import POOL
from router.pages.render import render, signed_in
from router.pages.session import Viewer

__all__ = ["megaplan_link", "setup_calls_pages"]

PAGE_SIZE = 50


def setup_calls_pages(app: web.Application) -> None:
    app.router.add_get("/calls", signed_in(calls_list))
    app.router.add_get("/calls/{entry_id:.+}", signed_in(one_call))


def megaplan_link(base_url: str | None, action: str, crm_id: str | None) -> str | None:
    """Where Megaplan's web interface shows what an action made (its client or deal card)."""
    if not base_url or not crm_id:
        return None
    base = base_url.rstrip("/")
    if action == "create_deal":
        return f"{base}/deals/{crm_id}/card/"
    if action in ("create_client", "set_responsible", "record_call"):
        return f"{base}/crm/{crm_id}/card/"
    return None


async def calls_list(request: web.Request, who: Viewer) -> web.StreamResponse:
    account = who.account
    searched = request.query.get("number", "").strip()
    key: int | None = None
    problem: str | None = None
    if searched:
        key = phone_key(searched, account.settings.default_region)
        if key is None:
            problem = "number"
    before = request.query.get("before") or None
    page = None
    if problem is None:
        try:
            async with request.app[POOL].acquire() as con:
                page = await calls_page(con, account.id, number=None if key is None else str(key),
                                        before=before, limit=PAGE_SIZE)
        except BadCursor:
            problem = "cursor"
    context: dict[str, Any] = {
        "calls": [] if page is None else page.calls, "older": None if page is None else page.older,
        "searched": searched, "problem": problem, "zone": ZoneInfo(account.settings.timezone),
        "paged": before is not None}
    if request.headers.get("HX-Request") == "true" and \
            "HX-History-Restore-Request" not in request.headers:
        # the rows for htmx to swap in as the number is typed; htmx swaps no 4xx, and a
        # half-typed number is a message to show, not a failure
        return render(request, "calls_rows.html", context, who=who)
    return render(request, "calls.html", context, who=who, status=400 if problem else 200)


async def one_call(request: web.Request, who: Viewer) -> web.StreamResponse:
    account = who.account
    async with request.app[POOL].acquire() as con:
        call = await find_call(con, account.id, request.match_info["entry_id"])
    if call is None:
        return render(request, "refused.html", {"reason": "missing"}, who=who, status=404)
    zone = ZoneInfo(account.settings.timezone)
    timeline: list[tuple[datetime, str, dict[str, Any]]] = [
        (e["received_at"], "event", e) for e in call["events"]]
    decision = call["decision"]
    if decision is not None:  # after the notification that asked for it, whatever the clocks
        first = min((at for at, _, _ in timeline), default=decision["decided_at"])
        timeline.append((max(decision["decided_at"], first), "decision", decision))
    for action in call["crm_actions"]:
        action = {**action, "link": megaplan_link(account.megaplan_url, action["action"],
                                                  action["crm_id"])}
        timeline.append((action["planned_at"], "action", action))
    timeline.sort(key=lambda item: item[0])
    return render(request, "call.html", {
        "call": call, "timeline": timeline, "zone": zone,
        "megaplan": account.megaplan_url}, who=who)

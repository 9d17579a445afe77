"""``/employees``: each active employee's extension and where it came from (the PBX's
user with the same e-mail, or set by hand), the unmatched first; the hand-set
extension edited here, as ``PUT /api/employees/{id}/extension`` does."""

from __future__ import annotations

import logging

from aiohttp import web

from lookup.employees import employee_extensions, set_extension
from router.keys import POOL
from router.pages.render import render, signed_in
from router.pages.session import Viewer

logger = logging.getLogger(__name__)

__all__ = ["setup_employees_page"]


def setup_employees_page(app: web.Application) -> None:
    app.router.add_get("/employees", signed_in(show_employees))
    app.router.add_post("/employees/{crm_id}", signed_in(save_extension))


async def _page(request: web.Request, who: Viewer, *, error: tuple[str, str] | None = None,
                saved: str | None = None, status: int = 200) -> web.StreamResponse:
    async with request.app[POOL].acquire() as con:
        employees = await employee_extensions(con, who.account.id)
    return render(request, "employees.html", {
        "employees": employees, "error": error, "saved": saved, "csrf": who.csrf,
        "unmatched": sum(1 for e in employees if e.source is None)}, who=who, status=status)


async def show_employees(request: web.Request, who: Viewer) -> web.StreamResponse:
    return await _page(request, who, saved=request.query.get("saved"))


async def save_extension(request: web.Request, who: Viewer) -> web.StreamResponse:
    crm_id = request.match_info["crm_id"]
    form = await request.post()
    raw = form.get("extension")
    extension = raw.strip() if isinstance(raw, str) and "clear" not in form else ""
    try:
        async with request.app[POOL].acquire() as con:
            found = await set_extension(con, who.account.id, crm_id, extension or None)
    except ValueError:
        return await _page(request, who, error=(crm_id, "digits"), status=400)
    if found is None:
        return render(request, "refused.html", {"reason": "missing"}, who=who, status=404)
    logger.info("extension set from the page", extra={
        "account": who.account.name, "employee": crm_id, "extension": extension or None})
    raise web.HTTPSeeOther(f"/employees?saved={crm_id}")

"""``/overview``: today's calls per hour as a chart drawn here (SVG, no script), the
index, the CRM sync, the outbox, and whether the PBX's API and the CRM answer."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiohttp import web

from lookup.health import service_health
from lookup.overview import overview
from router.keys import INDEXES, POOL
from router.pages.chart import lay_out
from router.pages.i18n import language, translator
from router.pages.outcomes import OUTCOME_TITLES, outcome_title
from router.pages.render import render, signed_in
from router.pages.session import Viewer

__all__ = ["setup_overview_page"]

def setup_overview_page(app: web.Application) -> None:
    app.router.add_get("/overview", signed_in(show_overview))


async def show_overview(request: web.Request, who: Viewer) -> web.StreamResponse:
    account = who.account
    async with request.app[POOL].acquire() as con:
        figures = await overview(con, account.id, timezone=account.settings.timezone)
        health = await service_health(con, account.id)
    index = request.app[INDEXES].get(account.id)
    _ = translator(language(request))
    reasons = {r for h in figures.hours for r in h.not_routed}
    chart = lay_out(figures.hours, label={k: _(outcome_title(k)) for k in
                                          {*OUTCOME_TITLES, *reasons}})
    return render(request, "overview.html", {
        "o": figures, "day": figures.total(), "chart": chart,
        "index_phones": None if index is None else len(index), "health": health,
        "has_crm": account.megaplan_url is not None, "zone": ZoneInfo(account.settings.timezone)},
        who=who)

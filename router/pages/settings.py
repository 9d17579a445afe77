"""``/settings``: the integration settings (PROTOCOLS §5) as the vendor's page words them.

The form posts every setting at once; it is turned into the same JSON update
``PUT /api/settings`` takes and saved through the same check, so a refused save
names its field (shown beside it) and changes nothing. Programs, states and
employees are offered by name from the CRM copy.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any
from zoneinfo import available_timezones

from aiohttp import web
from multidict import MultiDictProxy

from lookup.accounts import update_settings
from lookup.employees import employee_extensions
from lookup.programs import programs
from lookup.settings import Settings, SettingsError
from router.keys import ACCOUNTS, POOL
from router.pages.render import render, signed_in
from router.pages.session import Viewer

logger = logging.getLogger(__name__)

__all__ = ["setup_settings_page"]

_ZONES = tuple(sorted(z for z in available_timezones() if "/" in z and not z.startswith(
    ("Etc/", "SystemV/", "US/", "posix/", "right/"))))

# The validator's reasons (lookup.settings), as the page says them.
_REASONS = {
    "program_id and state_id are required for this mode":
        "Выберите вид процесса и статус: в этом режиме создаётся процесс.",
    "unknown program, or the state is not one of its states":
        "Такого вида процесса или статуса нет в Мегаплане.",
    "is required when enabled": "Выберите сотрудника.",
    "is not a known employee": "Такого активного сотрудника нет в Мегаплане.",
    "must be an ISO 3166 region code such as RU": "Нужен код страны ISO 3166, например RU.",
    "must be an IANA time zone such as Europe/Moscow":
        "Нужен часовой пояс IANA, например Europe/Moscow.",
    "must be a whole number from 1 to 720": "Нужно целое число часов от 1 до 720.",
}


def _reason(reason: str) -> tuple[str, str]:
    """The page's words for a refusal (to translate) and what it names as written: a
    line that is not a number names the line."""
    if reason in _REASONS:
        return _REASONS[reason], ""
    if reason.endswith(" is not a phone number"):
        return "Не номер телефона: ", reason.removesuffix(" is not a phone number")
    if reason.startswith(("each line must be", "must be a list of at most")):
        return "По одному номеру телефона в строке, не больше 100 строк.", ""
    return reason, ""


def setup_settings_page(app: web.Application) -> None:
    app.router.add_get("/settings", signed_in(show_settings))
    app.router.add_post("/settings", signed_in(save_settings))


async def show_settings(request: web.Request, who: Viewer) -> web.StreamResponse:
    return await _page(request, who, who.account.settings.to_json(), error=None,
                       saved=request.query.get("saved") == "1")


async def save_settings(request: web.Request, who: Viewer) -> web.StreamResponse:
    form = await request.post()
    update = settings_from_form(form, who.account.settings)
    try:
        async with request.app[POOL].acquire() as con:
            merged = await update_settings(con, who.account.id, update)
    except SettingsError as exc:
        return await _page(request, who, update, error=exc, saved=False, status=400)
    if merged is None:
        raise web.HTTPSeeOther("/overview")
    request.app[ACCOUNTS].update_settings(who.account.id, merged)
    logger.info("settings saved from the page", extra={"account": who.account.name})
    raise web.HTTPSeeOther("/settings?saved=1")


def settings_from_form(form: MultiDictProxy[Any], current: Settings) -> dict[str, Any]:
    """The whole settings object from the page's form (an unticked box is absent: false),
    as ``PUT /api/settings`` takes it; ``current`` fills a hidden field left empty."""
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def deal(name: str) -> dict[str, str | None]:
        program, _, state = text(name).partition(":")
        return {"program_id": program or None, "state_id": state or None}

    def employee(name: str) -> dict[str, Any]:
        return {"enabled": name + ".enabled" in form,
                "employee_id": text(name + ".employee_id") or None}

    hours: int | str = text("route_unknown_to_last_contact.within_hours")
    with suppress(ValueError):  # else the check names the field
        hours = int(hours)
    enabled = "route_unknown_to_last_contact.enabled" in form
    if not enabled and not isinstance(hours, int):
        hours = current.route_unknown_to_last_contact.within_hours  # hidden, not in use
    return {
        "route_to_responsible": "route_to_responsible" in form,
        "accepted_incoming": text("accepted_incoming"),
        "accepted_deal": deal("accepted_deal"),
        "missed_incoming": text("missed_incoming"),
        "missed_deal": deal("missed_deal"),
        "repeat_calls": text("repeat_calls"),
        "source_line": "source_line" in form,
        "update_responsible_on_transfer": "update_responsible_on_transfer" in form,
        "missed_in_ivr": employee("missed_in_ivr"),
        "missed_in_group": employee("missed_in_group"),
        "outgoing_create_client": "outgoing_create_client" in form,
        "phone_format": text("phone_format"),
        "default_region": text("default_region"),
        "timezone": text("timezone"),
        "dry_run": "dry_run" in form,
        "skip_busy_responsible": "skip_busy_responsible" in form,
        "route_unknown_to_last_contact": {"enabled": enabled, "within_hours": hours},
        "route_lines": [line.strip() for line in text("route_lines").splitlines()
                        if line.strip()],
    }


async def _page(request: web.Request, who: Viewer, values: dict[str, Any], *,
                error: SettingsError | None, saved: bool, status: int = 200
                ) -> web.StreamResponse:
    async with request.app[POOL].acquire() as con:
        found_programs = await programs(con, who.account.id)
        found = await employee_extensions(con, who.account.id)
    # offered by name (the employees page lists the unmatched first)
    employees = [(e.crm_id, e.name or e.crm_id) for e in
                 sorted(found, key=lambda e: (e.name.casefold(), e.crm_id))]
    errors: dict[str, tuple[str, str]] = {}
    if error is not None:
        errors[error.field.split(".")[0]] = _reason(str(error).partition(": ")[2])
    defaults = Settings().to_json()
    return render(request, "settings.html", {
        "s": {**defaults, **values}, "programs": found_programs, "employees": employees,
        "zones": _ZONES, "errors": errors, "saved": saved, "csrf": who.csrf,
        "has_crm": who.account.megaplan_url is not None}, who=who, status=status)

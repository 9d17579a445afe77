"""Extensions from MANGO OFFICE: ``config/users/request`` (PROTOCOLS §2), by e-mail.

A PBX that does not answer gives None, and the caller keeps the extensions it
has: a PBX outage must not take every employee's extension away.
"""

from __future__ import annotations

import logging
from typing import Any

from lookup.accounts import Account
from mango.client import PbxClient

logger = logging.getLogger(__name__)

__all__ = ["USERS_COMMAND", "extensions_by_email", "fetch_extensions"]

USERS_COMMAND = "config/users/request"
_WITHIN = 10.0


def extensions_by_email(users: Any) -> dict[str, str]:
    """``{"users": [{"general": {"email"}, "telephony": {"extension"}}]}`` → e-mail → extension.

    The first user with an e-mail wins; users without an e-mail or extension are skipped.
    """
    out: dict[str, str] = {}
    if not isinstance(users, list):
        return out
    for user in users:
        if not isinstance(user, dict):
            continue
        general = user.get("general")
        telephony = user.get("telephony")
        email = general.get("email") if isinstance(general, dict) else None
        extension = telephony.get("extension") if isinstance(telephony, dict) else None
        if isinstance(extension, int) and not isinstance(extension, bool):
            extension = str(extension)
        if isinstance(email, str) and email.strip() and isinstance(extension, str) and extension:
            out.setdefault(email.strip().casefold(), extension)
    return out


async def fetch_extensions(pbx: PbxClient, account: Account) -> dict[str, str] | None:
    result = await pbx.command(account, USERS_COMMAND, {}, within=_WITHIN)
    body = result.body
    if result.http_status != 200 or body is None or "users" not in body:
        logger.warning("sync: PBX users unavailable; keeping the extensions stored",
                       extra={"account": account.name, "http_status": result.http_status,
                              "result": result.result, "error": result.error})
        return None
    return extensions_by_email(body["users"])

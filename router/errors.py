"""Every error the service answers with, rendered in one place as JSON.

Handlers raise ``ApiError`` (or aiohttp's HTTP errors, such as the router's
404 and 405); ``error_middleware`` turns either into ``{"error": reason}``,
with ``"field"`` when one input is to blame, made by orjson. A timeout is a
504, as aiohttp answers it; any other exception is a bug: logged, and answered
with a 500, never passed off as a 400.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

logger = logging.getLogger(__name__)

__all__ = ["ApiError", "error_middleware"]

_DROPPED_HEADERS = frozenset({"content-type", "content-length"})  # ours replace them


class ApiError(Exception):
    """An answer that refuses the request: its status, why, and which field if one is to blame.

    ``extra`` adds keys beside ``error`` where an endpoint's answer has always
    carried them (``GET /route`` names the number).
    """

    __slots__ = ("extra", "field", "reason", "status")

    def __init__(self, status: int, reason: str, field: str | None = None, *,
                 extra: Mapping[str, object] | None = None) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.extra = extra


def _render(status: int, reason: str, field: str | None = None, *,
                   extra: Mapping[str, object] | None = None,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    body: dict[str, object] = dict(extra) if extra else {}
    body["error"] = reason
    if field is not None:
        body["field"] = field
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


def _http_error(exc: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (unknown path, wrong method, body too large) as JSON.

    The text is kept when whoever raised it wrote one; aiohttp's default
    ("404: Not Found") gives way to the bare reason. Headers such as 405's
    ``Allow`` are kept.
    """
    text = exc.text
    reason = exc.reason.lower() if not text or text == f"{exc.status}: {exc.reason}" else text
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in _DROPPED_HEADERS}
    return _render(exc.status, reason, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _render(exc.status, exc.reason, exc.field, extra=exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects and the like are answers, not errors
            raise
        return _http_error(exc)
    except TimeoutError:
        logger.warning("timed out answering %s %s", request.method, request.path)
        return _render(504, "timed out")
    except Exception:
        logger.exception("unexpected error answering %s %s", request.method, request.path)
        return _render(500, "internal error")

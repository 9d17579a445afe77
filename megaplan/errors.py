"""Errors the Megaplan layer raises; messages never carry credentials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "MappingError",
    "MegaplanAuthError",
    "MegaplanError",
    "MegaplanUnavailableError",
    "MegaplanUncertainError",
]


class MegaplanError(Exception):
    """The CRM answered with an error envelope (or a status we cannot use)."""

    def __init__(self, status: int, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        self.status = status
        self.errors: tuple[dict[str, Any], ...] = tuple(dict(e) for e in errors)
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = []
        for err in self.errors:
            field = err.get("field")
            message = str(err.get("message", ""))
            parts.append(f"{field}: {message}" if field else message)
        detail = "; ".join(p for p in parts if p) or "no details"
        return f"Megaplan answered {self.status}: {detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {list(self.errors)!r})"


class MegaplanAuthError(MegaplanError):
    """The token request was refused (wrong user or password, a blocked user…)."""


class MegaplanUnavailableError(MegaplanError):
    """Retries ran out (429, 5xx, dropped connections or timeouts).

    From a create (a non-idempotent call) it means the request was certainly not
    applied: only 429s and connections that could not be made are retried there.
    """


class MegaplanUncertainError(MegaplanUnavailableError):
    """A create may or may not have been applied; it was not re-sent.

    Raised at once for a non-idempotent call on a timeout, a connection dropped
    after sending, or a 5xx: re-sending blind could make a second client or deal.
    The caller looks for what the attempt made before creating again. It is a
    MegaplanUnavailableError too, so catch it first.
    """


class MappingError(ValueError):
    """One CRM object could not be read; the caller logs it and skips it."""

    def __init__(self, object_id: str | None, reason: str) -> None:
        self.object_id = object_id
        self.reason = reason
        super().__init__(f"Megaplan object {object_id or '<no id>'}: {reason}")

"""Where the CRM is and who we are there; the password never shows in a repr."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MegaplanCredentials"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MegaplanCredentials:
    base_url: str
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("Megaplan base_url must start with http:// or https://")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

"""Phone digits as the emulated CRM compares them (its search, its callRoute)."""

from __future__ import annotations

__all__ = ["normalise_digits"]


def normalise_digits(raw: str) -> str:
    """Russian numbers to 7XXXXXXXXXX: ``8 916…`` and bare ten digits get the ``7``."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) == 11 and digits[0] == "8":
        return "7" + digits[1:]
    if len(digits) == 10:
        return "7" + digits
    return digits

"""Phone numbers: one canonical key per number, E.164 digits as an integer.

``+7 (916) 123-45-67``, ``8 916 123-45-67`` and ``79161234567`` are one number.
The PBX sends plain digits, so ``phone_key`` answers those without a full parse
(the hot path pays a few string checks); anything else goes through
``phonenumbers`` with the account's default region. Both paths give the same
key for the same number: the fast path covers only shapes whose meaning is
not in doubt.
"""

from __future__ import annotations

from typing import Literal

import phonenumbers

__all__ = ["PhoneFormat", "format_phone", "masked", "phone_key"]

PhoneFormat = Literal["e164", "international", "national", "digits"]

_RU_BASE = 7 * 10**10  # 7XXXXXXXXXX
_SEPARATORS = str.maketrans("", "", " ()-.\u00a0")
_FORMATS = {
    "e164": phonenumbers.PhoneNumberFormat.E164,
    "international": phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    "national": phonenumbers.PhoneNumberFormat.NATIONAL,
}


def phone_key(raw: str, region: str = "RU") -> int | None:
    """The canonical key of ``raw`` (E.164 digits as an int), or None if not a phone number."""
    if raw.isdigit() and raw.isascii():
        if region == "RU":  # _digits_key inlined: this is the PBX's shape, on every call
            n = len(raw)
            if n == 11:
                if raw[0] == "7":
                    return int(raw)
                if raw[0] == "8":
                    return _RU_BASE + int(raw[1:])
            if n == 10:
                return _RU_BASE + int(raw)
    elif region == "RU":
        # "+7 (916) 123-45-67", "8 916 123-45-67": the common written shapes, without a parse
        digits = raw.translate(_SEPARATORS)
        plus = digits.startswith("+")
        if plus:
            digits = digits[1:]
        if digits.isdigit() and digits.isascii():
            if plus:
                if len(digits) == 11 and digits[0] == "7":
                    return int(digits)
            else:
                key = _digits_key(digits, region)
                if key is not None:
                    return key
    return _parse(raw, region)


def _digits_key(digits: str, region: str) -> int | None:
    if region == "RU":
        n = len(digits)
        if n == 11 and (digits[0] == "7" or digits[0] == "8"):
            return _RU_BASE + int(digits[1:])
        if n == 10:
            return _RU_BASE + int(digits)
    return None


def _parse(raw: str, region: str) -> int | None:
    text = raw.strip()
    if not text or len(text) > 40:
        return None
    number = _try_parse(text, region)
    digits = "".join(ch for ch in text if ch.isdigit())
    if (number is None or not phonenumbers.is_possible_number(number)) and (
        not text.startswith("+") and 11 <= len(digits) <= 15
    ):
        # digits as the PBX sends them: already international, without the plus
        number = _try_parse("+" + digits, region)
    if number is None or not phonenumbers.is_possible_number(number):
        return None
    return int(f"{number.country_code}{number.national_number}")


def _try_parse(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def format_phone(key: int, fmt: PhoneFormat, region: str = "RU") -> str:
    """How a number is written into the CRM (the setting «Формат телефонных номеров»);
    ``region``: the account's default region, which reads the numbers back.

    A number of another country code than the region's is written in the international
    format whatever ``fmt`` says: its national form (``044 123 4567``) or its bare digits
    (``81312345678``) would be read back by ``phone_key`` as a number of the region
    (``70441234567``, ``71312345678``), making its caller unknown and another number
    this client's. ``e164`` and ``international`` carry the country code already.
    """
    number = phonenumbers.parse(f"+{key}")
    if fmt in ("national", "digits") and (
            number.country_code != phonenumbers.country_code_for_region(region)):
        fmt = "international"
    if fmt == "digits":
        return str(key)
    return phonenumbers.format_number(number, _FORMATS[fmt])


def masked(number: str) -> str:
    """A caller's number as logs may show it: only its last four digits (``***4567``).

    Numbers too short to hide anything behind the last four are masked whole.
    """
    return "***" + number[-4:] if len(number) > 6 else "***"

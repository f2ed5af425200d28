"""Phone numbers residents type: mainland mobiles (11 digits, also +86, dashes, spaces, 全角) and
landlines with an area code (0571-88886666)."""

from __future__ import annotations

import re

from bot.text.normalize import normalize

_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?(1[3-9][0-9](?:[- ]?[0-9]{4}){2})(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9])(0[1-9][0-9]{1,2})[- ]?([2-9][0-9]{6,7})(?![0-9])")


def find_phone(text: str | None) -> str | None:
    """The first phone number: a mobile as 11 digits, a landline as area-number ('0755-12345678')."""
    clean = normalize(text)
    match = _MOBILE.search(clean)
    if match:
        return re.sub(r"[- ]", "", match.group(1))
    match = _LANDLINE.search(clean)
    if match:
        return f"{match.group(1)}-{match.group(2)}"
    return None


def without_phones(text: str | None) -> str:
    """The text with phone numbers blanked, so their digits are not read as a building or a date."""
    clean = normalize(text)
    clean = _MOBILE.sub(" ", clean)
    return _LANDLINE.sub(" ", clean)

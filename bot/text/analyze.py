"""What a free-text opener already tells us, in one reading: is it only "我要投诉"? where (whole, with
its parts)? since when? how many affected? a phone number? The intake service's /api/v1/analyze."""

from __future__ import annotations

from typing import Any

from bot.text.normalize import normalize
from bot.text.pii import find_phone, find_phones
from bot.text.places import find_place, place_parts
from bot.text.scope import find_scope
from bot.text.times import find_since_when
from bot.text.vague import is_vague


def without_phones(text: str) -> str:
    """`text` (already normalised) with its phone numbers blanked, so their digits are not read as a
    building number or a date."""
    for span in reversed(find_phones(text)):
        text = text[:span.start] + " " + text[span.end:]
    return text


def analyze(text: str | None) -> dict[str, Any]:
    """{"vague", "place", "place_parts", "since_when", "scope", "phone"}; place_parts is None without a place."""
    clean = normalize(text)
    phone = find_phone(clean)
    # Digits of a phone number must not read as a building number or a date.
    rest = without_phones(clean)
    place = find_place(rest)
    return {
        "vague": is_vague(rest),
        "place": place,
        "place_parts": place_parts(place).as_dict() if place else None,
        "since_when": find_since_when(rest),
        "scope": find_scope(rest),
        "phone": phone,
    }

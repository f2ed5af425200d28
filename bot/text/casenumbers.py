"""Case numbers residents quote: `SL2026-000123` with the configured prefix (intake.yml
`case_numbers.prefix`), tolerant of case, spaces, 全角 and a missing or odd dash."""

from __future__ import annotations

import re
from functools import lru_cache

from bot.text.normalize import normalize


@lru_cache(maxsize=8)
def _pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z]){re.escape(prefix)}\s*(20\d{{2}})\s*[-—–_.－]?\s*(\d{{4,6}})(?!\d)",
                      re.IGNORECASE)


def find_case_number(text: str | None, prefix: str = "SL") -> str | None:
    """The first case number in the text, canonical (SL2026-000123), or None."""
    prefix = (prefix or "SL").upper()
    match = _pattern(prefix).search(normalize(text))
    if not match:
        return None
    return f"{prefix}{match.group(1)}-{int(match.group(2)):06d}"

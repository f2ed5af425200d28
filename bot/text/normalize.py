"""Full-width folding: residents type 全角 digits, letters and dashes; every reader sees them half-width."""

from __future__ import annotations

import unicodedata


def normalize(text: str | None) -> str:
    """NFKC folds full-width letters, digits and punctuation (１３６ → 136, ＡＢＣ → ABC); strips ends."""
    return unicodedata.normalize("NFKC", text or "").strip()

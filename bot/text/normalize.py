"""Full-width folding: residents type 全角 digits, letters and dashes; every reader sees them half-width."""

from __future__ import annotations

import unicodedata


def normalize(text: str | None) -> str:
    """NFKC folds full-width letters, digits and punctuation (１３６ → 136, ＡＢＣ → ABC); strips ends."""
    return unicodedata.normalize("NFKC", text or "").strip()


def normalize_with_offsets(text: str) -> tuple[str, list[int]]:
    """NFKC-fold `text` character by character and return (folded, offsets) where `offsets[i]` is the index
    in `text` of the character that produced folded character i (plus one entry for the end).

    Readers match on the folded text; redaction masks the resident's own characters, so a span found in
    the folded text must map back (a few characters fold to several, e.g. ㈠ → (一)).
    """
    folded: list[str] = []
    offsets: list[int] = []
    for i, char in enumerate(text):
        piece = unicodedata.normalize("NFKC", char) if not char.isascii() else char
        folded.append(piece)
        offsets.extend([i] * len(piece))
    offsets.append(len(text))
    return "".join(folded), offsets

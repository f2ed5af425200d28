"""Split long replies to the platforms' size limits without cutting a sentence when avoidable."""

from __future__ import annotations

import re

# WeChat customer-service and WeCom text messages: 2048 bytes of UTF-8 each.
MAX_TEXT_BYTES = 2048

_BREAKS = re.compile(r"(?<=[\n。！？!?；;])")


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _hard_cut(piece: str, max_bytes: int) -> list[str]:
    out: list[str] = []
    current = ""
    for char in piece:
        if current and _nbytes(current + char) > max_bytes:
            out.append(current)
            current = ""
        current += char
    if current:
        out.append(current)
    return out


def split_text(text: str, max_bytes: int = MAX_TEXT_BYTES) -> list[str]:
    """Chunks of at most `max_bytes` UTF-8 bytes, cut after line ends or sentence ends if possible."""
    text = text.strip()
    if not text:
        return []
    chunks: list[str] = []
    current = ""
    for piece in _BREAKS.split(text):
        if not piece:
            continue
        if _nbytes(current + piece) <= max_bytes:
            current += piece
            continue
        if current.strip():
            chunks.append(current.strip())
        current = ""
        if _nbytes(piece) > max_bytes:
            *whole, current = _hard_cut(piece, max_bytes)
            chunks.extend(p for p in whole if p.strip())
        else:
            current = piece
    if current.strip():
        chunks.append(current.strip())
    return chunks


def pack_replies(replies: list[str], max_bytes: int = MAX_TEXT_BYTES) -> list[str]:
    """Join several bot messages into as few platform messages as fit, each within `max_bytes`."""
    return split_text("\n\n".join(r.strip() for r in replies if r and r.strip()), max_bytes)

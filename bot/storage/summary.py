"""Short title and summary of a concern, by plain rules (no segmentation needed); the full text is kept."""

from __future__ import annotations

import re

TITLE_MAX = 30
SUMMARY_MAX = 120

_CLAUSE_END = "，,。.！!？?；;：:\n"
# Openers that carry no content: greetings and "I want to report" phrases.
_OPENER = re.compile(
    r"^(?:(?:你好|您好|你们好|在吗|请问|打扰(?:一下)?了?|麻烦(?:问一下|一下)?|领导好|工作人员好|"
    r"我(?:想|要)?(?:投诉|反映|举报|咨询|求助|说|问)(?:一下|个|一个)?(?:问题|情况|事情?)?|"
    r"有(?:个|一个|件)(?:问题|情况|事情?|建议)(?:想|要)?(?:反映|说|问)?(?:一下)?)"
    r"[\s，,。.！!？?：:；;~～]*)+"
)


def clean(text: str) -> str:
    """One line, single spaces."""
    return " ".join((text or "").split())


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip(_CLAUSE_END + " ") + "…"


def derive_title(text: str) -> str:
    """The first clause that says something, at most 30 characters."""
    body = clean(text)
    stripped = _OPENER.sub("", body) or body
    for clause in re.split(f"[{re.escape(_CLAUSE_END)}]", stripped):
        clause = clause.strip()
        if len(clause) >= 2:
            return _cut(clause, TITLE_MAX)
    return _cut(stripped.strip(), TITLE_MAX)


def derive_summary(text: str) -> str:
    """The opening sentences up to 120 characters, ending at a sentence boundary where one is near."""
    body = _OPENER.sub("", clean(text)) or clean(text)
    if len(body) <= SUMMARY_MAX:
        return body
    head = body[:SUMMARY_MAX]
    end = max(head.rfind(ch) for ch in "。！？!?；;")
    if end >= SUMMARY_MAX // 2:
        return head[: end + 1]
    return _cut(body, SUMMARY_MAX)

"""Compose a 社情民意信息-shaped report from a case and its submissions."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field

import jieba
import jieba.analyse

from bot.config import settings
from bot.text.redact import redact
from bot.topics.taxonomy import Taxonomy

jieba.setLogLevel(logging.WARNING)

DEMAND_CUES = ("希望", "建议", "请求", "恳请", "要求", "呼吁", "能否", "能不能", "可否", "麻烦", "尽快", "请", "盼")
PROBLEM_CUES = ("问题", "隐患", "没有", "没人", "不", "无法", "难", "差", "坏", "乱", "堵", "吵", "臭", "漏",
                "拖欠", "危险", "投诉", "影响", "严重")
SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")


@dataclass
class Report:
    case_number: str
    title: str
    category: str
    committee: str
    location: str
    supporters: int
    basic_situation: str
    problems: list[str]
    demands: list[str]
    quotes: list[str]
    keywords: list[str]
    link: str
    created_at: str
    needs_review: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text.replace("\r", "")) if s.strip()]


def sort_sentences(text: str) -> tuple[list[str], list[str], list[str]]:
    """(background, problems, demands): demands carry a request cue, problems a complaint cue."""
    background, problems, demands = [], [], []
    for sentence in split_sentences(text):
        if any(cue in sentence for cue in DEMAND_CUES):
            demands.append(sentence)
        elif any(cue in sentence for cue in PROBLEM_CUES):
            problems.append(sentence)
        else:
            background.append(sentence)
    return background, problems, demands


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def case_link(number: str) -> str:
    base = str(settings().get("service", {}).get("public_url", "")).rstrip("/")
    return f"{base}/api/v1/cases/{number}"


def build_report(case, submissions: list, taxonomy: Taxonomy, consent_by_submission: dict[int, bool] | None = None,
                 names_by_submission: dict[int, str] | None = None) -> Report:
    """`case` and `submissions` are ORM rows (or anything with the same attributes). Text of residents
    who did not consent has phone numbers and names masked; ID numbers are always masked."""
    consent_by_submission = consent_by_submission or {}
    names_by_submission = names_by_submission or {}
    known_names = [n for n in names_by_submission.values() if n]

    def clean(sub) -> str:
        keep = bool(consent_by_submission.get(sub.id, False))
        names = [] if keep else known_names
        return redact(sub.text or "", keep_contact=keep, known_names=names)

    ordered = sorted(submissions, key=lambda s: (s.created_at is None, s.created_at, s.id or 0))
    texts = [clean(s) for s in ordered]
    first = texts[0] if texts else redact(case.summary or "")
    background, problems, demands = sort_sentences(first)
    for text in texts[1:]:  # later residents may add requests the first one did not make
        for demand in sort_sentences(text)[2]:
            if demand not in demands and len(demands) < 5:
                demands.append(demand)
    topic = taxonomy.topics.get(case.topic or "")
    committee = taxonomy.committees.get(topic.committee, "") if topic else ""
    location = case.place or "".join(x for x in (case.district, case.street, case.community) if x) or "未注明"
    keywords = jieba.analyse.extract_tags("\n".join(texts) or (case.summary or ""), topK=8)
    title = redact(case.title or "") or _shorten(first, 30)
    quotes = []
    for text in texts[:3]:
        quotes.append(_shorten(text, 80))
    return Report(
        case_number=case.number or "",
        title=title,
        category=topic.name if topic else "未分类",
        committee=committee,
        location=redact(location),
        supporters=int(case.supporter_count or len(submissions) or 1),
        basic_situation=_shorten("".join(background) or first, 300),
        problems=[_shorten(p, 150) for p in problems[:5]],
        demands=[_shorten(d, 150) for d in demands[:5]],
        quotes=quotes,
        keywords=list(keywords),
        link=case_link(case.number or ""),
        created_at=case.created_at.strftime("%Y-%m-%d %H:%M") if case.created_at else "",
        needs_review=bool(case.needs_review),
    )

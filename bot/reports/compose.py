"""Compose a 社情民意信息-shaped report from a case and its submissions.

Anonymity and consent decide what a member reads. An anonymous resident is "匿名群众" and nothing in
the report names or reaches them; a resident who consented to be called back (and is not anonymous)
is listed with the name and number they gave, and their quote keeps them. Everything else (subject,
facts, problems, suggestions, keywords) is built from fully redacted text, so it never carries contact.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import jieba
import jieba.analyse

from bot.config import settings
from bot.reports.subject import content_clauses, report_subject
from bot.text.redact import MASKS, redact
from bot.topics.taxonomy import Taxonomy

jieba.setLogLevel(logging.WARNING)

ANONYMOUS = "匿名群众"
NO_CONTACT = "群众（未留联系方式）"
DEMAND_CUES = ("希望", "建议", "请求", "恳请", "要求", "呼吁", "能否", "能不能", "可否", "麻烦", "尽快", "请", "盼")
SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")
_MASK_TOKEN = re.compile("|".join(re.escape(m) for m in MASKS.values()) + r"|\[内容已隐去\]")
_QUOTE_MAX = 300
# Words around personal data and building numbers say nothing about the concern.
_NOT_KEYWORDS = frozenset({"电话", "手机", "座机", "号码", "邮箱", "身份证", "联系", "联系方式", "名字", "号楼", "单元",
                           "你好", "您好", "谢谢", "反映", "问题", "某"})


@dataclass
class Report:
    case_number: str
    title: str
    category: str
    committee: str
    location: str
    supporters: int
    since_when: str
    scope: str
    reporters: list[str]
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


def sort_sentences(text: str) -> tuple[list[str], list[str]]:
    """(problems, demands) of redacted text: clauses that only introduce the resident or give contact
    details are dropped; a sentence with a request cue is a demand, every other one describes the problem."""
    problems, demands = [], []
    for sentence in split_sentences(text):
        end = sentence[-1] if sentence[-1] in "。！？!?；;" else "。"
        content = "，".join(content_clauses(sentence))
        if not content:
            continue
        content += end
        (demands if any(cue in content for cue in DEMAND_CUES) else problems).append(content)
    return problems, demands


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def case_link(number: str) -> str:
    """The case's page in the console (staff and members log in there), not the JSON API."""
    base = str(settings().get("service", {}).get("public_url", "")).rstrip("/")
    return f"{base}/console/cases/{number}"


@dataclass(frozen=True)
class _Resident:
    anonymous: bool
    shows_contact: bool
    name: str
    phone: str

    def label(self) -> str:
        if self.anonymous:
            return ANONYMOUS
        if not self.shows_contact or not (self.name or self.phone):
            return NO_CONTACT
        return " ".join(x for x in (self.name or "群众", self.phone) if x)


def _residents(submissions: list, contacts: Mapping[int, Any], consent: Mapping[int, bool],
               names: Mapping[int, str]) -> dict[int, _Resident]:
    out = {}
    for sub in submissions:
        contact = contacts.get(sub.id)
        anonymous = bool(getattr(sub, "anonymous", False))
        given = bool(consent.get(sub.id, getattr(contact, "consent", False)))
        name = names.get(sub.id) or getattr(contact, "name", None) or ""
        phone = getattr(contact, "phone", None) or ""
        out[sub.id] = _Resident(anonymous, given and not anonymous, name, phone)
    return out


def keywords_of(redacted_texts: list[str], k: int = 8) -> list[str]:
    """jieba keywords of already redacted text, with the masks themselves taken out first."""
    text = "\n".join(_MASK_TOKEN.sub(" ", t) for t in redacted_texts)
    return [w for w in jieba.analyse.extract_tags(text, topK=k + 4)
            if not w.isdigit() and w not in _NOT_KEYWORDS][:k]


def build_report(case, submissions: list, taxonomy: Taxonomy, consent_by_submission: dict[int, bool] | None = None,
                 names_by_submission: dict[int, str] | None = None,
                 contacts: Mapping[int, Any] | None = None) -> Report:
    """`case` and `submissions` are ORM rows (or anything with the same attributes); `contacts` maps a
    submission id to its Contact (phone, name, consent). The older `consent_by_submission` and
    `names_by_submission` maps are still read and win over `contacts`."""
    contacts = contacts or {}
    names = names_by_submission or {}
    ordered = sorted(submissions, key=lambda s: (s.created_at is None, s.created_at, s.id or 0))
    people = _residents(ordered, contacts, consent_by_submission or {}, names)
    known_names = sorted({p.name for p in people.values() if p.name})
    # Fully redacted: what every structured part of the report is made of.
    hidden = [redact(s.text or "", known_names=known_names) for s in ordered]
    first = hidden[0] if hidden else redact(case.summary or "", known_names=known_names)
    problems, demands = sort_sentences(first)
    if ordered and getattr(ordered[0], "kind", "concern") == "suggestion" and not demands:
        problems, demands = [], problems  # a suggestion is the resident's proposal throughout
    for text in hidden[1:]:  # later residents may add requests the first one did not make
        for demand in sort_sentences(text)[1]:
            if demand not in demands and len(demands) < 5:
                demands.append(demand)
    quotes = []
    for sub in ordered[:3]:
        person = people[sub.id]
        text = redact(sub.text or "", keep_contact=True) if person.shows_contact else hidden[ordered.index(sub)]
        quotes.append(_shorten(text, _QUOTE_MAX))
    topic = taxonomy.topics.get(case.topic or "")
    committee = taxonomy.committees.get(topic.committee, "") if topic else ""
    location = case.place or "".join(x for x in (case.district, case.street, case.community) if x) or "未注明"
    explicit = next((s.title for s in ordered if getattr(s, "title", None)), None)
    title = (_shorten(redact(explicit, known_names=known_names), 30) if explicit
             else report_subject(first, case.place))
    labels = [people[s.id].label() for s in ordered]
    reporters = labels[:3] + ([f"等 {len(labels)} 人"] if len(labels) > 3 else [])
    return Report(
        case_number=case.number or "",
        title=title,
        category=topic.name if topic else "未分类",
        committee=committee,
        location=redact(location),
        supporters=int(case.supporter_count or len(submissions) or 1),
        since_when=_first_fact(ordered, "since_when", known_names),
        scope=_first_fact(ordered, "scope", known_names),
        reporters=reporters,
        problems=[_shorten(p, 150) for p in problems[:5]],
        demands=[_shorten(d, 150) for d in demands[:5]],
        quotes=quotes,
        keywords=keywords_of(hidden or [first]),
        link=case_link(case.number or ""),
        created_at=case.created_at.strftime("%Y-%m-%d %H:%M") if case.created_at else "",
        needs_review=bool(case.needs_review),
    )


def _first_fact(submissions: list, attr: str, known_names: list[str]) -> str:
    for sub in submissions:
        value = getattr(sub, attr, None)
        if value:
            return redact(str(value), known_names=known_names)
    return ""

"""Concept features for the topic classifier.

A concept group pools words that mean the same kind of matter (传销 / 直销 / 拉人头; 公交 / 公交车 / 巴士).
With a few hundred labelled concerns most such words occur once or never, so a word-level model cannot
learn them; their group occurs often enough to get a weight. Each group also votes for the label it
belongs to (a product topic, or a level-1 category of a government category system), which gives the
model a prior for groups it has not seen in training at all.

Groups come from `nlu_data/topics/concepts.yml` (written for this project) and, optionally, from a
three-level government-affairs category system (JSON: level1 -> level2 -> [level3]), one group per
level-2 node.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jieba
import numpy as np
import yaml

from bot.config import REPO_ROOT

log = logging.getLogger(__name__)
CONCEPTS = REPO_ROOT / "nlu_data" / "topics" / "concepts.yml"
# Words that fit every topic: never a concept term, whatever a category name contains.
GENERIC = frozenset("问题 管理 服务 工作 发展 建设 相关 有关 建议 情况 单位 其他 部门 政府 领导 反映 投诉 "
                    "希望 要求 小区 群众 居民".split())
NAME_SPLIT = re.compile(r"[、，,/（）()和与及]")
HEADLINE_END = re.compile(r"[。！？!?\n]")
# Openers that say nothing about the matter ("尊敬的杨书记：您好！", "领导好，", "你好，打扰了。"): skipped
# before the first sentence is taken, or every message that opens politely would share a headline.
GREETING = re.compile(
    r"^(?:[\s\W_]+"
    r"|(?:尊敬|敬爱|亲爱)的[^，,。！？!?：:\n]{0,15}[：:，,]?"
    r"|(?:各位|诸位)?(?:政府|市|县|区|镇|街道|社区)?(?:领导|书记|市长|县长|区长|局长|主任|委员|同志|工作人员|管理员|小编)"
    r"(?:们)?(?:您好|你好|好)?(?=[\s\W_]|$)"
    r"|(?:您好|你好|大家好|hello|hi|嗨|在吗|在不在|打扰了|打扰一下|麻烦了|请问一下|冒昧打扰)(?=[\s\W_]|$))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ConceptGroup:
    id: str
    label: str
    terms: tuple[str, ...]


def split_headline(text: str) -> tuple[str, str]:
    """(first sentence, what follows it), greetings and salutations before it skipped."""
    rest = text.strip()
    while (m := GREETING.match(rest)) and m.end() > 0:
        rest = rest[m.end():]
    parts = HEADLINE_END.split(rest, maxsplit=1)
    return parts[0].strip(), (parts[1].strip() if len(parts) > 1 else "")


def headline(text: str, limit: int = 60) -> str:
    """The first sentence: a message's title (message_text puts it first) or a resident's opening line,
    which usually names the matter before the details. Greetings and salutations before it are skipped."""
    first, following = split_headline(text)
    return (first or following or text.strip())[:limit]


def load_concepts(path: Path = CONCEPTS) -> list[ConceptGroup]:
    if not Path(path).exists():
        log.warning("no concept lexicon at %s: topic classifier runs without concept features", path)
        return []
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    groups = []
    for item in data.get("concepts") or []:
        terms = tuple(dict.fromkeys(str(t).strip() for t in item.get("terms") or [] if _usable(str(t).strip())))
        if terms:
            groups.append(ConceptGroup(str(item["id"]), str(item["topic"]), terms))
    return groups


def _usable(term: str) -> bool:
    return len(term) >= 2 and term not in GENERIC


def _name_terms(name: str) -> set[str]:
    """A category name as terms: the name's parts ("园林绿化环卫" stays whole) and their jieba words."""
    parts = [p.strip() for p in NAME_SPLIT.split(name) if p.strip() and p.strip() != "其他"]
    terms = {p for p in parts if _usable(p)}
    for part in parts:
        terms |= {w for w in jieba.lcut(part) if _usable(w)}
    return terms


def groups_from_category_system(path: str | Path) -> list[ConceptGroup]:
    """One group per level-2 node of a level1 -> level2 -> [level3] JSON category system, labelled with
    its level-1 name; the terms are the level-2 and level-3 names and their words."""
    tree = json.loads(Path(path).read_text(encoding="utf-8"))
    groups = []
    for level1, children in tree.items():
        for level2, level3 in (children or {}).items():
            terms: set[str] = set() if level2 == "其他" else _name_terms(level2)
            for name in level3 or []:
                terms |= _name_terms(str(name))
            if terms:
                groups.append(ConceptGroup(f"{level1}/{level2}", str(level1), tuple(sorted(terms))))
    return groups


class ConceptFeaturizer:
    """Counts each group's terms in the headline and the whole text (log-scaled, headline counted extra)
    and sums them per label; both blocks are L2-normalised so long complaints do not dominate."""

    def __init__(self, groups: Sequence[ConceptGroup], headline_boost: float = 1.5) -> None:
        self.groups = list(groups)
        self.labels = sorted({g.label for g in self.groups})
        self.headline_boost = headline_boost
        # One alternation per group, longest terms first so 公交车 is counted once, not as 公交 + 车.
        self._patterns = [re.compile("|".join(re.escape(t) for t in sorted(g.terms, key=len, reverse=True)))
                          for g in self.groups]
        label_index = {label: i for i, label in enumerate(self.labels)}
        self._votes = np.zeros((len(self.groups), len(self.labels)), dtype=np.float32)
        for g, group in enumerate(self.groups):
            self._votes[g, label_index[group.label]] = 1.0

    def __len__(self) -> int:
        return len(self.groups)

    def counts(self, texts: Sequence[str], heads: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """log(1 + term count) per group, in the headline (derived unless given) and in the whole text."""
        heads = [headline(t) for t in texts] if heads is None else heads
        head_counts, whole = [], []
        for text, head in zip(texts, heads, strict=True):
            head_counts.append([len(p.findall(head)) for p in self._patterns])
            whole.append([len(p.findall(text)) for p in self._patterns])
        shape = (-1, len(self.groups))
        return (np.log1p(np.asarray(head_counts, dtype=np.float32).reshape(shape)),
                np.log1p(np.asarray(whole, dtype=np.float32).reshape(shape)))

    def transform(self, texts: Sequence[str], heads: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(group features, label votes) for each text. Headline and whole-text counts are separate
        columns, so a matter named in the headline can weigh more than one mentioned in passing."""
        head_counts, whole = self.counts(texts, heads)
        head_counts *= self.headline_boost
        votes = (head_counts + whole) @ self._votes
        return _l2(np.hstack([head_counts, whole])), _l2(votes)


def _l2(matrix: np.ndarray) -> np.ndarray:
    return matrix / (np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-6)

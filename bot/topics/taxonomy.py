"""The topic taxonomy: topics, the committees that follow them up, and label mappings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from bot.config import resolve_path, settings


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    committee: str
    description: str = ""
    gov_categories: tuple[str, ...] = ()


@dataclass
class Taxonomy:
    topics: dict[str, Topic]
    committees: dict[str, str]  # committee id -> Chinese name
    label_map: dict[str, str] = field(default_factory=dict)
    fallback: str = "other"

    def name(self, topic_id: str | None) -> str:
        topic = self.topics.get(topic_id or "")
        return topic.name if topic else "未分类"

    def map_label(self, label: str | None) -> str | None:
        """Map a label from imported data (a topic id, a Chinese topic name or a mapped label) to a topic id."""
        if not label:
            return None
        label = label.strip()
        if label in self.topics:
            return label
        for topic in self.topics.values():
            if topic.name == label:
                return topic.id
        return self.label_map.get(label)

    def prototype_text(self, topic_id: str) -> str:
        """A short text that describes a topic: used as an extra training example per topic."""
        topic = self.topics[topic_id]
        return "，".join([topic.name, topic.description, *topic.gov_categories])


class TaxonomyError(ValueError):
    """The taxonomy file is inconsistent."""


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    if path is None:
        path = resolve_path(settings().get("topics", {}).get("taxonomy", "nlu_data/topics/taxonomy.yml"))
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    committees = {str(c["id"]): str(c["name"]) for c in data.get("committees", [])}
    topics: dict[str, Topic] = {}
    for raw in data.get("topics", []):
        topic = Topic(
            id=str(raw["id"]),
            name=str(raw["name"]),
            committee=str(raw["committee"]),
            description=str(raw.get("description", "")),
            gov_categories=tuple(str(x) for x in raw.get("gov_categories", []) or []),
        )
        if topic.id in topics:
            raise TaxonomyError(f"{path}: topic id {topic.id!r} appears twice")
        if topic.committee not in committees:
            raise TaxonomyError(f"{path}: topic {topic.id!r} names unknown committee {topic.committee!r}")
        topics[topic.id] = topic
    label_map = {str(k): str(v) for k, v in (data.get("label_map") or {}).items()}
    for label, topic_id in label_map.items():
        if topic_id not in topics:
            raise TaxonomyError(f"{path}: label_map {label!r} -> unknown topic {topic_id!r}")
    fallback = str(data.get("fallback", "other"))
    if fallback not in topics:
        raise TaxonomyError(f"{path}: fallback topic {fallback!r} is not defined")
    return Taxonomy(topics=topics, committees=committees, label_map=label_map, fallback=fallback)


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    return load_taxonomy()

"""Training data for the topic classifier: YAML examples, JSONL files and labelled submissions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.config import REPO_ROOT
from bot.topics.taxonomy import Taxonomy

EXAMPLES_DIR = REPO_ROOT / "nlu_data" / "topics"


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def message_text(text: str, title: str | None = None) -> str:
    """What the classifier reads: the title (when there is one) before the body."""
    title = (title or "").strip()
    return f"{title}。{text}" if title else text


def load_examples(taxonomy: Taxonomy, directory: Path = EXAMPLES_DIR) -> list[Example]:
    """Examples from `<dir>/*.yml` files shaped `{topic: id, examples: [...]}`, plus one prototype per topic."""
    out: list[Example] = []
    for path in sorted(directory.glob("*.yml")):
        if path.name in ("taxonomy.yml", "departments.yml", "concepts.yml"):
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        topic = str(data.get("topic", ""))
        if topic not in taxonomy.topics:
            raise ValueError(f"{path}: unknown topic {topic!r}")
        out.extend(Example(str(text), topic) for text in data.get("examples", []) or [])
    # The taxonomy's own words as one more example per topic (a name prototype).
    out.extend(Example(taxonomy.prototype_text(tid), tid) for tid in taxonomy.topics)
    return out


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def labelled_from_jsonl(path: str | Path) -> list[Example]:
    return [
        Example(message_text(row["text"], row.get("title")), str(row["label"]))
        for row in read_jsonl(path)
        if row.get("label") not in (None, "")
    ]


def labelled_from_db(session, taxonomy: Taxonomy) -> list[Example]:
    """Imported submissions with a label that maps onto the product taxonomy."""
    from bot.storage.models import Submission

    out: list[Example] = []
    rows: Iterable[Submission] = session.query(Submission).filter(Submission.label.isnot(None))
    for sub in rows:
        topic = taxonomy.map_label(sub.label)
        if topic:
            out.append(Example(message_text(sub.text, sub.title), topic))
    return out

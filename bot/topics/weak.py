"""Weak labels from official replies: the department that answered a historical message tells its topic.

`nlu_data/topics/departments.yml` lists, per label set, departments that usually answer each label. A
message whose reply opening names departments of exactly one label gets that label; replies naming none,
or departments of several labels, stay unlabelled (they can still serve self-training).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.config import REPO_ROOT
from bot.topics.data import Example, message_text

DEPARTMENTS = REPO_ROOT / "nlu_data" / "topics" / "departments.yml"
REPLY_HEAD = 200  # characters of the reply to read: the answering department is named early


def departments_for(labels: set[str], path: Path = DEPARTMENTS) -> dict[str, list[str]]:
    """The label set in the file that best matches the data's labels, restricted to them."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    best: dict[str, list[str]] = {}
    for section in (data.get("label_sets") or {}).values():
        chosen = {str(k): [str(x) for x in v or []] for k, v in section.items() if str(k) in labels}
        if len(chosen) > len(best):
            best = chosen
    return best


def weak_labels(rows: list[dict], labels: set[str], departments: dict[str, list[str]] | None = None) -> list[Example]:
    """Examples for rows (with `text`, `title?`, `reply`) whose reply names one label's departments."""
    departments = departments if departments is not None else departments_for(labels)
    out = []
    for row in rows:
        head = str(row.get("reply") or "")[:REPLY_HEAD]
        if not head:
            continue
        hits = {label for label, names in departments.items() if any(name in head for name in names)}
        if len(hits) == 1:
            out.append(Example(message_text(row["text"], row.get("title")), hits.pop()))
    return out

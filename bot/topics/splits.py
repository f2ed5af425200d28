"""Frozen train/test splits: made once with a fixed seed, committed as id lists only (never the texts).

A frozen test split is the one place a figure can be honest about unseen data: every choice (features,
settings, variants) is made by cross-validation inside the train ids, and the test ids are scored once
for the configuration chosen. `make_split` refuses to overwrite an existing file so the split cannot be
redrawn quietly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from sklearn.model_selection import train_test_split

PARTS = ("train", "test")


def make_split(ids: Sequence[str], labels: Sequence[str], test_size: float = 0.3, seed: int = 20261201) -> dict:
    """Stratified by label: every label keeps its share in both parts."""
    train, test = train_test_split(list(ids), test_size=test_size, random_state=seed, stratify=list(labels))
    return {"stratified_by": "label", "test_size": test_size, "seed": seed,
            "train": sorted(train, key=_id_key), "test": sorted(test, key=_id_key)}


def _id_key(value: str) -> tuple[int, str]:
    return (int(value), "") if str(value).isdigit() else (1 << 62, str(value))


def write_split(split: dict, path: str | Path, source: str) -> None:
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists: a frozen split is made once (delete it on purpose to redraw)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": source, **split}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def load_split(path: str | Path) -> dict:
    split = json.loads(Path(path).read_text(encoding="utf-8"))
    overlap = set(split["train"]) & set(split["test"])
    if overlap:
        raise ValueError(f"{path}: {len(overlap)} ids are in both train and test")
    return split


def select(rows: Sequence[dict], split: dict, part: str) -> list[dict]:
    """The rows of one part, in file order. Every id of the part must be present (same data file)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    wanted = {str(i) for i in split[part]}
    chosen = [row for row in rows if str(row.get("id")) in wanted]
    if len(chosen) != len(wanted):
        raise ValueError(f"split part {part!r} names {len(wanted)} ids, the data file has {len(chosen)} of them")
    return chosen

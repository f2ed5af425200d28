"""Frozen topic splits, bootstrap intervals, and `eval topics --split-file/--use/--bootstrap/--shipped`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main as cli
from bot.topics.data import load_examples
from bot.topics.intervals import bootstrap_interval
from bot.topics.splits import load_split, make_split, select, write_split
from bot.topics.taxonomy import load_taxonomy

REPO = Path(__file__).resolve().parents[1]


def _rows() -> list[dict]:
    taxonomy = load_taxonomy()
    return [{"id": str(i), "text": e.text, "label": taxonomy.topics[e.label].name}
            for i, e in enumerate(load_examples(taxonomy))]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_split_is_stratified_disjoint_reproducible_and_written_once(tmp_path: Path) -> None:
    rows = _rows()
    ids, labels = [r["id"] for r in rows], [r["label"] for r in rows]
    split = make_split(ids, labels, test_size=0.3, seed=7)
    assert split == make_split(ids, labels, test_size=0.3, seed=7)
    assert not set(split["train"]) & set(split["test"]) and len(split["train"]) + len(split["test"]) == len(ids)
    by_id = dict(zip(ids, labels, strict=True))
    test_counts, all_counts = Counter(by_id[i] for i in split["test"]), Counter(labels)
    for label, n in all_counts.items():  # every label keeps about its share in the test part
        assert abs(test_counts[label] - 0.3 * n) <= 1
    path = tmp_path / "s.json"
    write_split(split, path, "x.jsonl")
    with pytest.raises(FileExistsError):
        write_split(split, path, "x.jsonl")
    loaded = load_split(path)
    assert [r["id"] for r in select(rows, loaded, "test")] == [i for i in ids if i in set(split["test"])]
    with pytest.raises(ValueError, match="names"):
        select(rows[:3], loaded, "test")


def test_committed_topic_split_is_frozen_and_holds_ids_only() -> None:
    split = load_split(REPO / "evals" / "splits" / "topics.json")
    assert (len(split["train"]), len(split["test"]), split["seed"]) == (319, 137, 20261201)
    assert all(str(i).isdigit() for i in split["train"] + split["test"])  # ids, never message text


def test_bootstrap_interval_brackets_the_figure_and_narrows_with_more_items() -> None:
    rng = np.random.default_rng(1)
    small, large = rng.random(50) < 0.8, rng.random(2000) < 0.8
    lo_s, hi_s = bootstrap_interval(len(small), lambda i: float(small[i].mean()), 500, seed=3)
    lo_l, hi_l = bootstrap_interval(len(large), lambda i: float(large[i].mean()), 500, seed=3)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < hi_s - lo_s


def test_eval_topics_frozen_test_with_bootstrap_and_shipped(var_dir: Path, tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    monkeypatch.setattr("bot.topics.embeddings.embed_texts", lambda texts, cache=True: None)
    rows = _rows()
    data, split_file = tmp_path / "data.jsonl", tmp_path / "split.json"
    _write_jsonl(data, rows)
    assert cli(["split-topics", "--data", str(data), "--out", str(split_file), "--seed", "3"]) == 0
    capsys.readouterr()
    split = load_split(split_file)
    png = str(tmp_path / "cm.png")
    assert cli(["eval", "topics", "--train", str(data), "--split-file", str(split_file), "--use", "test",
                "--bootstrap", "200", "--no-embeddings", "--png", png]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mode"] == "frozen_test" and result["n"] == len(split["test"])
    low, high = result["macro_f1_95ci"]
    assert low <= result["macro_f1"] <= high and result["bootstrap"] == 200

    assert cli(["eval", "topics", "--train", str(data), "--split-file", str(split_file), "--use", "train",
                "--cv", "3", "--no-embeddings", "--png", png]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mode"] == "cv3" and result["n"] == len(split["train"])

    assert cli(["eval", "topics", "--train", str(data), "--split-file", str(split_file), "--use", "test",
                "--shipped", "--no-embeddings", "--png", png]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    taxonomy = load_taxonomy()
    assert result["mode"] == "shipped" and result["model_labels"] == len(taxonomy.topics)
    assert set(result["per_class_f1"]) <= set(taxonomy.topics)  # scored on the product's topic ids

"""Duplicate-detection quality: `eval dedup` (labelled pairs) and `eval clusters` (message stream).

`eval clusters` replays messages in time order through the real DuplicateDetector against a fresh
in-memory index, exactly as the intake service would, and scores the cases it ends up with
against the labelled clusters (null label = a concern of its own).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import resolve_path
from index.dedup import DuplicateDetector, PastConcern
from index.vector_index import VectorIndex

Encode = Callable[[list[str]], np.ndarray]


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def message_text(row: dict[str, Any]) -> str:
    """What is embedded and re-checked for a message: its title (if any) and its text."""
    title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
    return f"{title}。{text}" if title else text


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return None


def embed_cached(encode: Encode, texts: list[str], model_name: str, progress: bool = True,
                 batch: int = 64) -> np.ndarray:
    """Embed with a cache under var/cache keyed by model and texts (evaluations re-run often)."""
    from tqdm import tqdm

    digest = hashlib.sha256(model_name.encode() + b"\0" + "\0".join(texts).encode("utf-8")).hexdigest()[:20]
    cache = resolve_path("var/cache") / f"emb-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    parts = []
    for start in tqdm(range(0, len(texts), batch), disable=not progress, desc="encode", unit="batch"):
        parts.append(encode(texts[start: start + batch]))
    vectors = np.concatenate(parts) if parts else np.empty((0, 0), np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


# --------------------------------------------------------------------------- metrics
def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else float("nan")


def best_threshold_accuracy(labels: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """(accuracy, threshold) at the threshold that maximises accuracy."""
    y = np.asarray(labels)
    s = np.asarray(scores, np.float64)
    order = np.argsort(-s)
    y_sorted, s_sorted = y[order], s[order]
    # Predict positive for the top i items: correct = positives in top i + negatives after.
    tp = np.concatenate([[0], np.cumsum(y_sorted)])
    neg_after = (len(y) - y.sum()) - np.concatenate([[0], np.cumsum(1 - y_sorted)])
    acc = (tp + neg_after) / len(y)
    i = int(np.argmax(acc))
    threshold = float(s_sorted[i - 1]) if i > 0 else float(s_sorted[0]) + 1e-9
    return float(acc[i]), threshold


def precision_recall(labels: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    y, p = np.asarray(labels, bool), np.asarray(predicted, bool)
    tp = int((y & p).sum())
    precision = tp / int(p.sum()) if p.sum() else float("nan")
    recall = tp / int(y.sum()) if y.sum() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def pair_counts(truth: Sequence[Any], predicted: Sequence[Any]) -> tuple[int, int, int]:
    """(true pairs, predicted pairs, pairs in both) of "same case"; None in `truth` is a cluster of its own.
    Counts rather than ratios, so several replays (cross-validation folds) can be summed."""
    def pairs(groups: Iterable[Any]) -> set[tuple[int, int]]:
        members: dict[Any, list[int]] = {}
        for i, g in enumerate(groups):
            if g is not None:
                members.setdefault(g, []).append(i)
        return {pair for ids in members.values() for pair in combinations(ids, 2)}

    true_pairs, pred_pairs = pairs(truth), pairs(predicted)
    return len(true_pairs), len(pred_pairs), len(true_pairs & pred_pairs)


def scores_from_counts(true: int, predicted: int, tp: int) -> dict[str, float]:
    """Pairwise precision/recall/F1 from `pair_counts(...)`."""
    precision = tp / predicted if predicted else float("nan")
    recall = tp / true if true else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_pairs": true, "predicted_pairs": predicted}


def pairwise_scores(truth: Sequence[Any], predicted: Sequence[Any]) -> dict[str, float]:
    """Pairwise precision/recall/F1 of "same case"; None in `truth` means a cluster of its own."""
    return scores_from_counts(*pair_counts(truth, predicted))


def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe: NaN -> None, floats rounded."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out[key] = _clean(value)
        elif isinstance(value, float):
            out[key] = None if math.isnan(value) else round(value, 4)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- eval dedup
def evaluate_pairs(pairs: list[dict[str, Any]], encode: Encode, model_name: str,
                   detector_factory: Callable[[VectorIndex, Callable[[list[int]], list[PastConcern]]],
                                              DuplicateDetector],
                   progress: bool = True) -> dict[str, Any]:
    """Cosine and combined score on labelled pairs {"a","b","label"}; the product's decision on each."""
    from tqdm import tqdm

    a = embed_cached(encode, [str(p["a"]) for p in pairs], model_name, progress)
    b = embed_cached(encode, [str(p["b"]) for p in pairs], model_name, progress)
    labels = [int(p["label"]) for p in pairs]
    cosines = np.einsum("ij,ij->i", a, b).tolist()
    detector = detector_factory(VectorIndex(), lambda ids: [])
    combined, outcomes = [], []
    for pair, cosine in tqdm(list(zip(pairs, cosines, strict=False)), disable=not progress, desc="re-check", unit="pair"):
        past = PastConcern(0, 0, str(pair["b"]))
        probability, _ = detector.score_pair(str(pair["a"]), None, past, cosine)
        combined.append(probability)
        # The product never proposes a candidate below min_cosine.
        outcomes.append(detector.outcome(probability) if cosine >= detector.calibration["min_cosine"] else "new")
    cos_acc, cos_thr = best_threshold_accuracy(labels, cosines)
    comb_acc, comb_thr = best_threshold_accuracy(labels, combined)
    return _clean({
        "pairs": len(pairs),
        "positives": int(sum(labels)),
        "auc_cosine": roc_auc(labels, cosines),
        "auc_combined": roc_auc(labels, combined),
        "best_accuracy_cosine": cos_acc,
        "best_threshold_cosine": cos_thr,
        "best_accuracy_combined": comb_acc,
        "best_threshold_combined": comb_thr,
        "decision_merge": precision_recall(labels, [o == "merge" for o in outcomes]),
        "decision_merge_or_ask": precision_recall(labels, [o != "new" for o in outcomes]),
    })


# --------------------------------------------------------------------------- eval clusters
def replay(messages: list[dict[str, Any]], vectors: np.ndarray, detector_factory: Callable[
        [VectorIndex, Callable[[list[int]], list[PastConcern]]], DuplicateDetector],
        progress: bool = True) -> tuple[list[int], list[int], list[Any]]:
    """Feed messages in time order through the detector. Returns (case per message for "merge",
    case per message if every "ask" were confirmed, top candidate's message index or None)."""
    from tqdm import tqdm

    order = sorted(range(len(messages)), key=lambda i: (str(messages[i].get("time") or ""), i))
    index = VectorIndex()
    past: dict[int, PastConcern] = {}
    detector = detector_factory(index, lambda ids: [past[i] for i in ids if i in past])
    case_merge = [0] * len(messages)
    case_ask = [0] * len(messages)
    top: list[Any] = [None] * len(messages)
    ask_case: dict[int, int] = {}  # merge-case -> case when asks are confirmed
    for i in tqdm(order, disable=not progress, desc="replay", unit="msg"):
        row = messages[i]
        created = parse_time(row.get("time"))
        decision = detector.decide(message_text(row), vectors[i], place=row.get("place"), created_at=created)
        best = decision.best
        top[i] = best.submission_id if best else None
        if decision.outcome == "merge" and best is not None:
            case_merge[i] = best.case_id
        else:
            case_merge[i] = i
        if decision.outcome in ("merge", "ask") and best is not None:
            case_ask[i] = ask_case[best.submission_id]
        else:
            case_ask[i] = i
        ask_case[i] = case_ask[i]
        past[i] = PastConcern(i, case_merge[i], message_text(row), row.get("place"), created)
        index.add([i], vectors[i: i + 1], None, [created])
    return case_merge, case_ask, top


def evaluate_clusters(messages: list[dict[str, Any]], encode: Encode, model_name: str,
                      detector_factory: Callable[[VectorIndex, Callable[[list[int]], list[PastConcern]]],
                                                 DuplicateDetector],
                      progress: bool = True) -> dict[str, Any]:
    vectors = embed_cached(encode, [message_text(m) for m in messages], model_name, progress)
    labels = [m.get("label") for m in messages]
    case_merge, case_ask, top = replay(messages, vectors, detector_factory, progress)
    # Nearest-neighbour accuracy: for a message with an earlier member of its cluster, is the top
    # candidate (re-checked) / the top cosine neighbour such a member?
    order = sorted(range(len(messages)), key=lambda i: (str(messages[i].get("time") or ""), i))
    rank = {i: r for r, i in enumerate(order)}
    hits_top = hits_cos = eligible = 0
    for i in order:
        if labels[i] is None:
            continue
        earlier = [j for j in order[: rank[i]]]
        if not any(labels[j] == labels[i] for j in earlier):
            continue
        eligible += 1
        if top[i] is not None and labels[top[i]] == labels[i]:
            hits_top += 1
        sims = vectors[earlier] @ vectors[i]
        if labels[earlier[int(np.argmax(sims))]] == labels[i]:
            hits_cos += 1
    return _clean({
        "messages": len(messages),
        "clusters": len({x for x in labels if x is not None}),
        "background": sum(1 for x in labels if x is None),
        "pairwise_merge": pairwise_scores(labels, case_merge),
        "pairwise_merge_or_confirmed_ask": pairwise_scores(labels, case_ask),
        "nn_eligible": eligible,
        "nn_accuracy_recheck": hits_top / eligible if eligible else float("nan"),
        "nn_accuracy_cosine": hits_cos / eligible if eligible else float("nan"),
    })

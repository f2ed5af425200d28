"""`shangliang calibrate dedup`: fit the same-issue model and write index/calibration.json.

Training pairs are what the product actually re-checks: for each message of the cluster file,
its nearest earlier messages by cosine (label: same cluster). General-domain pairs (`--pairs`)
can be added. A logistic regression on `index.features.FEATURE_NAMES` gives the weights (and a second one
without the headline feature, for pairs where a concern is a single sentence); the
merge threshold is the lowest probability whose merges reach `--merge-precision` on the training
candidates, the ask threshold the one reaching `--ask-precision`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from index.dedup import CALIBRATION_FILE, DEFAULT_CALIBRATION
from index.evaluate import Encode, embed_cached, message_text, pair_counts, parse_time, scores_from_counts
from index.features import FEATURE_NAMES, pair_features, profile


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def cluster_pairs(messages: list[dict[str, Any]], vectors: np.ndarray, k: int = 10,
                  min_cosine: float = 0.80) -> tuple[list[list[float]], list[int]]:
    """Features and labels of (message, earlier neighbour) pairs as the detector would see them."""
    order = sorted(range(len(messages)), key=lambda i: (str(messages[i].get("time") or ""), i))
    X: list[list[float]] = []
    y: list[int] = []
    for r, i in enumerate(order):
        earlier = order[:r]
        if not earlier:
            continue
        sims = vectors[earlier] @ vectors[i]
        for j in np.argsort(-sims)[:k]:
            cosine = float(sims[j])
            if cosine < min_cosine:
                continue
            other = earlier[int(j)]
            a, b = messages[i], messages[other]
            gap = None
            ta, tb = parse_time(a.get("time")), parse_time(b.get("time"))
            if ta and tb:
                gap = abs((ta - tb).total_seconds()) / 86400
            X.append(pair_features(profile(message_text(a), a.get("place")),
                                   profile(message_text(b), b.get("place")), cosine, gap))
            y.append(int(a.get("label") is not None and a.get("label") == b.get("label")))
    return X, y


def text_pairs(pairs: list[dict[str, Any]], encode: Encode, model_name: str) -> tuple[list[list[float]], list[int]]:
    a = embed_cached(encode, [str(p["a"]) for p in pairs], model_name)
    b = embed_cached(encode, [str(p["b"]) for p in pairs], model_name)
    cos = np.einsum("ij,ij->i", a, b)
    X = [pair_features(profile(str(p["a"])), profile(str(p["b"])), float(c)) for p, c in zip(pairs, cos, strict=False)]
    return X, [int(p["label"]) for p in pairs]


def threshold_for_precision(probs: np.ndarray, labels: np.ndarray, target: float, floor: float) -> float:
    """Lowest probability cut whose positives reach `target` precision (never below `floor`)."""
    order = np.argsort(-probs)
    tp = np.cumsum(labels[order])
    precision = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(precision >= target)
    if ok.size == 0:
        return 0.99
    # The last rank at which precision still meets the target.
    return float(max(floor, probs[order][ok[-1]]))


def fit_with_fallback(X: list[list[float]], y: list[int], merge_precision: float = 0.97,
                      ask_precision: float = 0.6) -> dict[str, Any]:
    """The main model on every feature, and the model for pairs without headlines on the same pairs
    without the headline feature (`index.dedup` picks one per pair)."""
    main = fit(X, y, merge_precision, ask_precision)
    headline = FEATURE_NAMES.index("headline_overlap")
    without = fit([row[:headline] + row[headline + 1:] for row in X], y, merge_precision, ask_precision)
    main["without_headline"] = {k: without[k] for k in ("weights", "intercept", "merge_threshold", "ask_threshold")}
    return main


def fit(X: list[list[float]], y: list[int], merge_precision: float = 0.97,
        ask_precision: float = 0.6, C: float = 1.0) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    Xa, ya = np.asarray(X, np.float64), np.asarray(y, np.int64)
    if len(set(ya.tolist())) < 2:
        raise ValueError("calibration needs both same-issue and different-issue pairs")
    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(Xa, ya)
    probs = model.predict_proba(Xa)[:, 1]
    merge = threshold_for_precision(probs, ya, merge_precision, 0.5)
    ask = min(threshold_for_precision(probs, ya, ask_precision, 0.2), merge)
    return {
        "features": list(FEATURE_NAMES),
        "weights": [round(float(w), 5) for w in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 5),
        "merge_threshold": round(merge, 4),
        "ask_threshold": round(ask, 4),
        "training_pairs": int(len(ya)),
        "training_positives": int(ya.sum()),
    }


def calibrate(clusters: list[dict[str, Any]] | None, pairs: list[dict[str, Any]] | None,
              encode: Encode, model_name: str, *, sources: dict[str, str],
              notes: dict[str, Any] | None = None,
              out: Path = CALIBRATION_FILE, merge_precision: float = 0.97,
              ask_precision: float = 0.6) -> dict[str, Any]:
    X: list[list[float]] = []
    y: list[int] = []
    if clusters:
        vectors = embed_cached(encode, [message_text(m) for m in clusters], model_name)
        cx, cy = cluster_pairs(clusters, vectors, min_cosine=float(DEFAULT_CALIBRATION["min_cosine"]))
        X += cx
        y += cy
    if pairs:
        px, py = text_pairs(pairs, encode, model_name)
        X += px
        y += py
    result = {
        **{k: DEFAULT_CALIBRATION[k] for k in ("min_cosine", "window_days")},
        **fit_with_fallback(X, y, merge_precision, ask_precision),
        "encoder": model_name,
        "data": {
            **{name: {"file": Path(path).name, "sha256_16": _sha(path)} for name, path in sources.items()},
            **(notes or {}),
        },
        "merge_precision_target": merge_precision,
        "ask_precision_target": ask_precision,
        "fitted_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "source": "shangliang calibrate dedup",
    }
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return result


def cross_validate(messages: list[dict[str, Any]], encode: Encode, model_name: str, folds: int = 5,
                   seed: int = 0, merge_precision: float = 0.97, ask_precision: float = 0.6,
                   progress: bool = True) -> dict[str, Any]:
    """Leave-clusters-out estimate of what a calibration fitted on these messages does on new ones.

    Messages are split into `folds` by cluster (a cluster never straddles folds; background messages
    are spread at random); each fold is replayed through the real decision with a calibration fitted
    on the other folds, and the pairwise counts are summed. This is how feature or recipe changes are
    compared without touching the held-out test split (the in-sample figure of the calib split
    flatters anything that adds parameters).
    """
    from tqdm import tqdm

    from index.dedup import DuplicateDetector
    from index.evaluate import replay

    vectors = embed_cached(encode, [message_text(m) for m in messages], model_name, progress)
    groups = sorted({m.get("label") or f"background:{m.get('id', i)}" for i, m in enumerate(messages)})
    rng = np.random.default_rng(seed)
    fold_of = {g: int(k) % folds for g, k in zip(rng.permutation(groups), range(len(groups)), strict=True)}
    assigned = [fold_of[m.get("label") or f"background:{m.get('id', i)}"] for i, m in enumerate(messages)]
    totals = {"merge": [0, 0, 0], "merge_or_ask": [0, 0, 0]}
    for fold in tqdm(range(folds), desc="calibration CV", unit="fold", disable=not progress):
        train = [i for i, f in enumerate(assigned) if f != fold]
        held = [i for i, f in enumerate(assigned) if f == fold]
        X, y = cluster_pairs([messages[i] for i in train], vectors[train],
                             min_cosine=float(DEFAULT_CALIBRATION["min_cosine"]))
        params = {**DEFAULT_CALIBRATION, **fit_with_fallback(X, y, merge_precision, ask_precision)}
        held_messages = [messages[i] for i in held]
        case_merge, case_ask, _ = replay(held_messages, vectors[held],
                                         lambda index, fetch, p=params: DuplicateDetector(index, fetch, p), False)
        truth = [m.get("label") for m in held_messages]
        for key, predicted in (("merge", case_merge), ("merge_or_ask", case_ask)):
            totals[key] = [a + b for a, b in zip(totals[key], pair_counts(truth, predicted), strict=True)]
    result: dict[str, Any] = {"folds": folds, "seed": seed, "messages": len(messages)}
    for key, counts in totals.items():
        scores = scores_from_counts(*counts)
        result[key] = {**{k: round(scores[k], 4) for k in ("precision", "recall", "f1")},
                       "true_pairs": scores["true_pairs"], "predicted_pairs": scores["predicted_pairs"]}
    return result

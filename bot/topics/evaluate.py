"""Evaluate the topic classifier: train/test split or k-fold cross-validation, metrics, confusion PNG."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold

from bot.topics.classifier import ClassifierConfig, TopicClassifier
from bot.topics.concepts import ConceptGroup
from bot.topics.intervals import bootstrap_interval

log = logging.getLogger(__name__)

CJK_FONT_NAMES = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC",
                  "SimHei", "Microsoft YaHei", "PingFang SC", "AR PL UMing CN"]


@dataclass
class Dataset:
    texts: list[str]
    labels: list[str]
    vectors: np.ndarray | None = None


@dataclass
class Unlabeled:
    texts: list[str]
    vectors: np.ndarray | None = None


def metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: list[str]) -> dict:
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)), 4),
        "per_class_f1": {label: round(float(f), 4) for label, f in zip(labels, per_class, strict=False)},
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def add_intervals(result: dict, y_true: Sequence[str], y_pred: Sequence[str], labels: list[str],
                  resamples: int, seed: int = 0) -> dict:
    """Bootstrap 95% intervals of accuracy and macro-F1 over the evaluated messages."""
    if resamples <= 0:
        return result
    t, p = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    result["bootstrap"] = resamples
    result["accuracy_95ci"] = bootstrap_interval(len(t), lambda i: float(np.mean(t[i] == p[i])), resamples, seed)
    result["macro_f1_95ci"] = bootstrap_interval(
        len(t), lambda i: float(f1_score(t[i], p[i], labels=labels, average="macro", zero_division=0)),
        resamples, seed)
    return result


def _fit(train: Dataset, extra: Dataset | None, unlabeled: Unlabeled | None,
         config: ClassifierConfig, concepts: list[ConceptGroup] | None = None) -> TopicClassifier:
    texts, labels, vectors = list(train.texts), list(train.labels), train.vectors
    if extra is not None and extra.texts:
        texts += extra.texts
        labels += extra.labels
        vectors = None if vectors is None or extra.vectors is None else np.vstack([vectors, extra.vectors])
    return TopicClassifier(config=config, concepts=concepts).fit(
        texts, labels, vectors,
        unlabeled_texts=unlabeled.texts if unlabeled else (),
        unlabeled_vectors=unlabeled.vectors if unlabeled else None,
    )


def _predict(model: TopicClassifier, data: Dataset) -> list[str]:
    return [ranked[0][0] for ranked in model.predict(data.texts, data.vectors)]


def train_test(train: Dataset, test: Dataset, extra: Dataset | None = None,
               unlabeled: Unlabeled | None = None, config: ClassifierConfig | None = None,
               concepts: list[ConceptGroup] | None = None, bootstrap: int = 0) -> dict:
    model = _fit(train, extra, unlabeled, config or ClassifierConfig(), concepts)
    labels = sorted(set(train.labels) | set(test.labels))
    predicted = _predict(model, test)
    return add_intervals(metrics(test.labels, predicted, labels), test.labels, predicted, labels, bootstrap)


def shipped_on(test: Dataset, model: TopicClassifier, bootstrap: int = 0) -> dict:
    """The product's own model (its taxonomy, trained without the evaluation data) on labels already
    mapped onto that taxonomy. Macro-F1 averages the labels the test data has; a prediction of any other
    product topic counts as a miss of the true one."""
    predicted = _predict(model, test)
    labels = sorted(set(test.labels))
    result = add_intervals(metrics(test.labels, predicted, labels), test.labels, predicted, labels, bootstrap)
    outside = sum(1 for p in predicted if p not in set(labels))
    result["predicted_outside_test_labels"] = outside
    return result


def cross_validate(data: Dataset, folds: int = 5, extra: Dataset | None = None,
                   unlabeled: Unlabeled | None = None, config: ClassifierConfig | None = None,
                   seed: int = 0, concepts: list[ConceptGroup] | None = None, bootstrap: int = 0) -> dict:
    """Stratified k-fold: every text is predicted by a model that never saw it; the extra examples and
    unlabelled texts join every training fold only."""
    y = np.asarray(data.labels, dtype=object)
    predicted = np.empty(len(y), dtype=object)
    fold_f1 = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    labels = sorted(set(data.labels))
    for i, (tr, te) in enumerate(splitter.split(np.zeros(len(y)), y)):
        sub = lambda idx: Dataset(  # noqa: E731
            [data.texts[j] for j in idx], [data.labels[j] for j in idx],
            None if data.vectors is None else data.vectors[idx],
        )
        model = _fit(sub(tr), extra, unlabeled, config or ClassifierConfig(), concepts)
        predicted[te] = _predict(model, sub(te))
        fold_f1.append(round(float(f1_score(y[te], predicted[te], labels=labels, average="macro",
                                            zero_division=0)), 4))
        log.info("fold %d/%d macro-F1 %.4f", i + 1, folds, fold_f1[-1])
    result = add_intervals(metrics(list(y), list(predicted), labels), list(y), list(predicted), labels, bootstrap)
    result["folds"] = folds
    result["fold_macro_f1"] = fold_f1
    return result


def find_cjk_font() -> str | None:
    """A font file that can draw Chinese: a system font, else the Noto Sans CJK SC shipped in the
    `mplfonts` package (installed by `make install`; found without importing it), else None."""
    import importlib.util

    from matplotlib import font_manager

    for font in font_manager.fontManager.ttflist:
        if font.name in CJK_FONT_NAMES:
            return font.fname
    candidates = [Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
                  Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")]
    spec = importlib.util.find_spec("mplfonts")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "fonts" / "NotoSansCJKsc-Regular.otf" for p in spec.submodule_search_locations]
    for path in candidates:
        if path.exists():
            return str(path)
    return None


def save_confusion_png(result: dict, path: Path, title: str = "Topic confusion matrix") -> str | None:
    """Draw the confusion matrix with Chinese labels. Returns the font used (None: labels may show as
    boxes because no CJK font was found; install fonts-wqy-microhei or fonts-noto-cjk)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    font_path = find_cjk_font()
    prop = None
    if font_path:
        font_manager.fontManager.addfont(font_path)
        prop = font_manager.FontProperties(fname=font_path)
    labels = result["labels"]
    cm = np.asarray(result["confusion"])
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 3, 1.0 * len(labels) + 2.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)))
    ax.set_yticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontproperties=prop)
    ax.set_yticklabels(labels, fontproperties=prop)
    ax.set_xlabel("预测 predicted", fontproperties=prop)
    ax.set_ylabel("真实 true", fontproperties=prop)
    ax.set_title(f"{title} (macro-F1 {result['macro_f1']:.3f})", fontproperties=prop)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return font_path

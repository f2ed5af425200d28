"""Topic classifier: char n-gram + jieba-word TF-IDF linear SVM (sigmoid-calibrated), combined with a
logistic regression on the concern embedding, optionally self-trained on unlabelled concerns.

Both models give probabilities; the ensemble takes their weighted geometric mean (renormalised) so one
confident, well-informed view can outvote an unsure one. A linear SVM rather than a logistic regression on
the sparse features: as accurate here and ~30x faster to train on this 2-core machine.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jieba
import numpy as np
from scipy.sparse import csr_matrix, hstack, vstack
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

jieba.setLogLevel(logging.WARNING)
log = logging.getLogger(__name__)

Ranked = list[tuple[str, float]]


def _words(text: str) -> list[str]:
    return [w for w in jieba.lcut(text) if w.strip()]


@dataclass
class ClassifierConfig:
    lexical_c: float = 1.0
    embedding_c: float = 10.0
    embedding_weight: float = 0.5  # share of the embedding model in the log-probability average
    self_train_threshold: float = 0.7  # pseudo-label unlabelled texts the first model is this sure of
    max_features: int = 200_000


@dataclass
class TopicClassifier:
    """`fit` on texts + labels (+ optional vectors); `predict` returns ranked (label, probability) lists."""

    config: ClassifierConfig = field(default_factory=ClassifierConfig)
    classes_: list[str] = field(default_factory=list)
    data_hash: str = ""

    def __post_init__(self) -> None:
        self._char: TfidfVectorizer | None = None
        self._word: TfidfVectorizer | None = None
        self._lexical: CalibratedClassifierCV | None = None
        self._embedding: LogisticRegression | None = None

    # -- features ---------------------------------------------------------------------------
    def _fit_vectorizers(self, corpus: Sequence[str]) -> None:
        self._char = TfidfVectorizer(
            analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1,
            max_features=self.config.max_features,
        )
        self._word = TfidfVectorizer(tokenizer=_words, token_pattern=None, lowercase=False, sublinear_tf=True)
        self._char.fit(corpus)
        self._word.fit(corpus)

    def _lexical_features(self, texts: Sequence[str]) -> csr_matrix:
        assert self._char is not None and self._word is not None
        return hstack([self._char.transform(texts), self._word.transform(texts)]).tocsr()

    # -- training ---------------------------------------------------------------------------
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        vectors: np.ndarray | None = None,
        unlabeled_texts: Sequence[str] = (),
        unlabeled_vectors: np.ndarray | None = None,
    ) -> TopicClassifier:
        """Train. Unlabelled texts shape the vocabulary and, when given, are pseudo-labelled once
        (self-training) with the predictions the first model is confident about."""
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        if len(set(labels)) < 2:
            raise ValueError("need at least two distinct labels to train a classifier")
        y = np.asarray(labels, dtype=object)
        self._fit_vectorizers(list(texts) + list(unlabeled_texts))
        x_lex = self._lexical_features(texts)
        use_vectors = vectors is not None and len(vectors) == len(texts)
        self._train(x_lex, y, vectors if use_vectors else None, y)
        if len(unlabeled_texts):
            u_lex = self._lexical_features(unlabeled_texts)
            u_vec = unlabeled_vectors if use_vectors and unlabeled_vectors is not None else None
            proba = self._proba(u_lex, u_vec)
            keep = proba.max(axis=1) >= self.config.self_train_threshold
            if keep.any():
                pseudo = np.asarray(self.classes_, dtype=object)[proba.argmax(axis=1)][keep]
                log.info("self-training: %d of %d unlabelled texts pseudo-labelled", keep.sum(), len(keep))
                if u_vec is not None:
                    emb_x, emb_y = np.vstack([vectors, u_vec[keep]]), np.concatenate([y, pseudo])
                else:  # no vectors for the unlabelled texts: the embedding model keeps the labelled set
                    emb_x, emb_y = (vectors, y) if use_vectors else (None, y)
                self._train(vstack([x_lex, u_lex[keep]]).tocsr(), np.concatenate([y, pseudo]), emb_x, emb_y)
        return self

    def _train(self, x_lex: csr_matrix, y: np.ndarray, vectors: np.ndarray | None, vector_y: np.ndarray) -> None:
        _, counts = np.unique(y, return_counts=True)
        folds = int(min(3, counts.min()))
        svm = LinearSVC(C=self.config.lexical_c)
        if folds >= 2:
            self._lexical = CalibratedClassifierCV(svm, cv=folds, method="sigmoid").fit(x_lex, y)
        else:  # too few examples of some label to calibrate: prefit and calibrate on the training data
            self._lexical = CalibratedClassifierCV(svm.fit(x_lex, y), cv="prefit", method="sigmoid").fit(x_lex, y)
        self.classes_ = [str(c) for c in self._lexical.classes_]
        self._embedding = None
        if vectors is not None:
            self._embedding = LogisticRegression(C=self.config.embedding_c, max_iter=3000).fit(
                np.asarray(vectors, dtype=np.float32), vector_y
            )

    # -- prediction -------------------------------------------------------------------------
    def _proba(self, x_lex: csr_matrix, vectors: np.ndarray | None) -> np.ndarray:
        assert self._lexical is not None, "classifier is not trained"
        log_p = np.log(np.clip(self._lexical.predict_proba(x_lex), 1e-9, 1.0))
        if self._embedding is not None and vectors is not None:
            w = self.config.embedding_weight
            log_e = np.log(np.clip(self._embedding.predict_proba(np.asarray(vectors, np.float32)), 1e-9, 1.0))
            log_p = (1 - w) * log_p + w * log_e
        log_p -= log_p.max(axis=1, keepdims=True)
        p = np.exp(log_p)
        return p / p.sum(axis=1, keepdims=True)

    def predict_proba(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> np.ndarray:
        return self._proba(self._lexical_features(list(texts)), vectors)

    def predict(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> list[Ranked]:
        """For each text, all labels with their probability, best first."""
        proba = self.predict_proba(texts, vectors)
        ranked: list[Ranked] = []
        for row in proba:
            order = np.argsort(-row)
            ranked.append([(self.classes_[i], float(row[i])) for i in order])
        return ranked

    @property
    def uses_embeddings(self) -> bool:
        return self._embedding is not None

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(self, fh)
        tmp.replace(path)  # atomic: a reader never sees a half-written model

    @staticmethod
    def load(path: Path) -> TopicClassifier:
        with open(path, "rb") as fh:
            model = pickle.load(fh)
        if not isinstance(model, TopicClassifier):
            raise TypeError(f"{path} does not hold a TopicClassifier")
        return model


def training_hash(texts: Sequence[str], labels: Sequence[str], extra: str = "") -> str:
    """Hash of the training data and settings: the cache key for a persisted classifier."""
    digest = hashlib.sha256(extra.encode("utf-8"))
    for text, label in zip(texts, labels, strict=False):
        digest.update(label.encode("utf-8") + b"\x1f" + text.encode("utf-8") + b"\x1e")
    return digest.hexdigest()[:16]


def default_classifier() -> TopicClassifier:
    """The process-wide product classifier (the intake service calls this): the last model trained with
    `shangliang train-topics`, else one trained now from nlu_data/topics and cached under var/."""
    from bot.topics.service import get_classifier

    return get_classifier()

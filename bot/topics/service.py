"""The product classifier at run time: trained from nlu_data/topics + labelled history, cached under
var/models/topics by a hash of its training data, and applied to cases."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.config import resolve_path, settings, var_dir
from bot.topics.classifier import Ranked, TopicClassifier, training_hash
from bot.topics.concepts import ConceptGroup, groups_from_category_system, load_concepts
from bot.topics.data import Example, labelled_from_db, load_examples
from bot.topics.embeddings import embed_concerns
from bot.topics.taxonomy import Taxonomy, default_taxonomy

log = logging.getLogger(__name__)
_lock = threading.Lock()
_cached: TopicClassifier | None = None


@dataclass
class TopicResult:
    topic: str
    name: str
    confidence: float
    needs_review: bool
    ranked: Ranked


def review_below() -> float:
    return float(settings().get("topics", {}).get("review_below", 0.5))


def training_examples(session=None, taxonomy: Taxonomy | None = None) -> list[Example]:
    taxonomy = taxonomy or default_taxonomy()
    examples = load_examples(taxonomy)
    if session is not None:
        examples += labelled_from_db(session, taxonomy)
    return examples


def concept_groups() -> list[ConceptGroup]:
    """The project's concept lexicon plus the configured category system's groups, if any."""
    groups = load_concepts()
    path = (settings().get("topics") or {}).get("category_system")
    if path:
        resolved = resolve_path(str(path))
        if resolved.exists():
            groups += groups_from_category_system(resolved)
        else:
            log.warning("topics.category_system %s does not exist; using the concept lexicon alone", resolved)
    return groups


def configured_encoder_name() -> str | None:
    """The configured encoder's variant name, without loading it; None when none is configured."""
    try:
        from index.encoder import configured_name

        return configured_name()
    except (ImportError, KeyError, OSError) as exc:
        log.warning("no encoder configured (%s); topic classifier uses lexical features only", exc)
        return None


def default_encoder_name() -> str:
    from index.encoder import default_encoder

    return default_encoder().name


def train_classifier(session=None, use_embeddings: bool = True, force: bool = False) -> tuple[TopicClassifier, bool]:
    """Train (or load the cached model for the same data). Returns (model, loaded_from_cache)."""
    global _cached
    examples = training_examples(session)
    texts = [e.text for e in examples]
    labels = [e.label for e in examples]
    # The concept lexicon, the feature layout and the encoder variant whose vectors the model reads are
    # part of the model: a change retrains it. The variant's name is known without loading the encoder,
    # so a cached model is found without encoding the training set.
    groups = concept_groups()

    def model_path(encoder_name: str | None) -> Path:
        key = training_hash(texts, labels, extra=f"emb={encoder_name};features=3;{groups!r}")
        return var_dir() / "models" / "topics" / f"topics-{key}.pkl"

    path = model_path(configured_encoder_name() if use_embeddings else None)
    if path.exists() and not force:
        model = TopicClassifier.load(path)
        _cached = model
        return model, True
    vectors = embed_concerns(texts) if use_embeddings else None
    if use_embeddings:
        # No encoder (vectors None) or a name other than the configured one: key by what was used.
        path = model_path(default_encoder_name() if vectors is not None else None)
    model = TopicClassifier(concepts=groups).fit(texts, labels, vectors)
    model.data_hash = path.stem.removeprefix("topics-")
    model.save(path)
    (path.parent / "current").write_text(path.name, encoding="utf-8")
    _cached = model
    log.info("topic classifier trained on %d examples (%d labels), saved to %s", len(texts), len(set(labels)), path)
    return model, False


def train_with_history(use_embeddings: bool = True, force: bool = False) -> tuple[TopicClassifier, bool]:
    """train_classifier on nlu_data/topics plus the labelled history in the database (migrated first)."""
    from bot.storage.db import session_scope, upgrade

    upgrade()  # labelled history lives in the database; make sure its tables exist
    with session_scope() as session:
        return train_classifier(session, use_embeddings=use_embeddings, force=force)


def get_classifier(session=None) -> TopicClassifier:
    """The process-wide classifier: the last trained model on disk, else trained now."""
    global _cached
    with _lock:
        if _cached is not None:
            return _cached
        pointer = var_dir() / "models" / "topics" / "current"
        if pointer.exists():
            path = pointer.parent / pointer.read_text(encoding="utf-8").strip()
            if path.exists():
                _cached = TopicClassifier.load(path)
                return _cached
        model, _ = train_classifier(session)
        return model


def reset_classifier() -> None:
    global _cached
    _cached = None


def classify(text: str, vector: np.ndarray | None = None, session=None) -> TopicResult:
    """Rank topics for one concern; flags it for staff review when the top confidence is low."""
    model = get_classifier(session)
    vectors = None
    if vector is not None and model.uses_embeddings:
        vectors = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    ranked = model.predict([text], vectors)[0]
    topic, confidence = ranked[0]
    taxonomy = default_taxonomy()
    return TopicResult(topic=topic, name=taxonomy.name(topic), confidence=confidence,
                       needs_review=confidence < review_below(), ranked=ranked)

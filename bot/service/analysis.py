"""Adapter between the intake pipeline and the parts built elsewhere: encoder, topic classifier,
duplicate index. Each one is optional: when a module is missing or fails, a concern is still stored
(as a new case, topic unknown) and a warning is logged.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bot.config import resolve_path, settings

log = logging.getLogger(__name__)


@dataclass
class DedupCandidate:
    case_id: int
    submission_id: int | None
    score: float


@dataclass
class DedupResult:
    outcome: str = "new"  # merge | ask | new
    candidates: list[DedupCandidate] = field(default_factory=list)


def _optional(module: str) -> Any | None:
    """Import a module built by another part; None when it does not exist (yet)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


class Analysis:
    """Encoder, classifier and duplicate index behind one small interface, loaded in the background."""

    def __init__(self, session_factory: sessionmaker,
                 encoder_factory: Callable[[], Any] | None = None,
                 classifier_factory: Callable[[], Any] | None = None) -> None:
        self.session_factory = session_factory
        self._encoder_factory = encoder_factory
        self._classifier_factory = classifier_factory
        self.encoder: Any | None = None
        self.store: Any | None = None
        self.detector: Any | None = None
        self.classifier: Any | None = None
        self._taxonomy: Any | None = None
        self.ready = threading.Event()  # everything loaded (or given up)
        self.core_ready = threading.Event()  # encoder and duplicate index loaded (or given up)
        self.loading = False
        # One writer for index mutations (add, catch-up, rebuild); encoding is serialised too, the
        # machine has two cores and torch threads would only fight.
        self.write_lock = threading.Lock()
        self._encode_lock = threading.Lock()

    # ---- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Blocking: load the encoder, the index (with catch-up) and the classifier. Never raises."""
        self.loading = True
        try:
            self._load_encoder()
            if self.encoder is not None:
                self._load_index()
                self._warm_up()
            # Submissions may proceed now; the classifier (possibly trained on first use) follows.
            self.core_ready.set()
            if self.encoder is not None:
                self._load_classifier()
        finally:
            self.loading = False
            self.core_ready.set()
            self.ready.set()

    def _load_encoder(self) -> None:
        try:
            if self._encoder_factory is not None:
                self.encoder = self._encoder_factory()
            else:
                encoder_module = _optional("index.encoder")
                if encoder_module is None:
                    log.warning("index.encoder is not installed: concerns are stored without vectors")
                    return
                self.encoder = encoder_module.default_encoder()
            log.info("encoder ready: %s (dim %d)", getattr(self.encoder, "name", "?"), self.encoder.dim)
        except Exception as exc:  # a missing model folder must not stop intake
            log.warning("encoder unavailable (%s): concerns are stored and encoded later", exc)
            self.encoder = None

    def _load_index(self) -> None:
        store_module = _optional("index.store")
        dedup_module = _optional("index.dedup")
        if store_module is None or dedup_module is None:
            log.warning("duplicate index modules missing: every concern is filed as a new case")
            return
        try:
            path = resolve_path(settings()["index"]["path"])
            with self.write_lock:
                self.store = store_module.IndexStore(self.session_factory, self.encoder.dim, path)
            fetch = getattr(self.store, "fetch", None) or self._fetch
            self.detector = dedup_module.DuplicateDetector(self.store, fetch)
            log.info("duplicate index ready")
        except Exception:
            log.exception("duplicate index failed to load: every concern is filed as a new case")
            self.store = self.detector = None

    def _load_classifier(self) -> None:
        """`bot.topics.classifier.default_classifier()` if the topics part provides it, else the
        pickle named by `topics.model_path` in intake.yml; no classifier means topic null."""
        if self._classifier_factory is not None:
            self.classifier = self._classifier_factory()
            return
        module = _optional("bot.topics.classifier")
        if module is None:
            return
        try:
            loader = getattr(module, "default_classifier", None)
            if loader is not None:
                self.classifier = loader()
            else:
                configured = (settings().get("topics") or {}).get("model_path")
                if not configured:
                    log.info("no trained topic classifier configured: topics left empty")
                    return
                self.classifier = module.TopicClassifier.load(resolve_path(configured))
            if self.classifier is not None:
                log.info("topic classifier ready")
        except FileNotFoundError:
            log.info("topic classifier not trained yet: topics left empty")
        except Exception:
            log.exception("topic classifier failed to load: topics left empty")
            self.classifier = None

    def _warm_up(self) -> None:
        """The first encode and the first duplicate check load lazily (seconds); pay that at start."""
        sample = "预热：幸福小区3号楼门口的路灯坏了三个月"
        vector = self.encode(sample)
        if vector is None or self.detector is None:
            return
        try:
            features = _optional("index.features")
            profile = getattr(features, "profile", None)
            if profile is not None:
                profile(sample, None)  # loads jieba and its dictionaries
            self.detector.decide(sample, vector, place=None)
        except Exception:
            log.exception("duplicate check warm-up failed")

    def warn_outdated_vectors(self) -> str | None:
        """At start-up: one warning line when stored vectors were made by another encoder variant (its
        name changes with the token limit, int8 or the runtime), which duplicate search would compare
        with new ones. Nothing is re-encoded here: on a large history that takes long and would hold the
        CPU the residents' concerns need, so the line names the command that does it. Returns the line
        logged, if any; never raises (a start-up hint must not stop intake)."""
        name = self.encoder_name
        if name is None:
            return None
        try:
            reencode = _optional("index.reencode")
            if reencode is None:
                return None
            message = reencode.outdated_warning(reencode.vectors_by_model(self.session_factory), name)
        except Exception:
            log.exception("counting stored vectors per encoder failed")
            return None
        if message:
            log.warning("%s", message)
        return message

    # ---- per concern ---------------------------------------------------------------------------
    @property
    def encoder_name(self) -> str | None:
        return getattr(self.encoder, "name", None) if self.encoder is not None else None

    def encode(self, text: str, on_failure: str = "the concern is stored without a vector") -> np.ndarray | None:
        """One L2-normalised vector, or None when the encoder is unavailable or fails."""
        vectors = self.encode_many([text], on_failure)
        return None if vectors is None else vectors[0]

    def encode_many(self, texts: list[str], on_failure: str = "they are retried later") -> np.ndarray | None:
        """Vectors for several texts in one call, or None when the encoder is unavailable or fails
        (logged as "encoding failed; <on_failure>")."""
        if self.encoder is None or not texts:
            return None
        try:
            with self._encode_lock:
                return np.asarray(self.encoder.encode(list(texts)), dtype=np.float32)
        except Exception:
            log.exception("encoding %d text(s) failed; %s", len(texts), on_failure)
            return None

    def classify(self, text: str, vector: np.ndarray | None) -> tuple[str, float] | None:
        if self.classifier is None or vector is None:
            return None
        try:
            ranked = self.classifier.predict([text], self._topic_vectors(text, vector))[0]
        except Exception:
            log.exception("topic classification failed")
            return None
        if not ranked:
            return None
        topic, confidence = ranked[0]
        return str(topic), float(confidence)

    def _topic_vectors(self, text: str, vector: np.ndarray) -> np.ndarray:
        """The concern's vector beside its headline's. A one-sentence concern is its own headline; a
        longer one costs one more encode of a short text (a few ms)."""
        from bot.topics.concepts import headline
        from bot.topics.embeddings import paired

        head = headline(text)
        head_vector = (self.encode(head, "the concern's own vector stands in for its headline's")
                       if head != text.strip() else None)
        return paired(vector, head_vector)

    def topic_name(self, topic_id: str) -> str:
        try:
            if self._taxonomy is None:
                from bot.topics.taxonomy import default_taxonomy

                self._taxonomy = default_taxonomy()
            return str(self._taxonomy.name(topic_id))
        except Exception:
            return topic_id

    def decide(self, text: str, vector: np.ndarray | None, place: str | None = None,
               created_at: datetime | None = None, jurisdiction: str | None = None) -> DedupResult:
        if self.detector is None or vector is None:
            return DedupResult()
        try:
            decision = self.detector.decide(text, vector, place=place, created_at=created_at,
                                            jurisdiction=jurisdiction)
        except Exception:
            log.exception("duplicate check failed; filing as a new case")
            return DedupResult()
        candidates = [
            DedupCandidate(int(c.case_id), getattr(c, "submission_id", None), float(c.probability))
            for c in decision.candidates
        ]
        outcome = decision.outcome if decision.outcome in ("merge", "ask", "new") else "new"
        if outcome != "new" and not candidates:
            outcome = "new"
        return DedupResult(outcome, candidates)

    def catch_up_recent(self, since: datetime) -> None:
        """Index submissions other intake services stored since `since` (shared database)."""
        method = getattr(self.store, "catch_up_recent", None)
        if not callable(method):
            return
        try:
            with self.write_lock:
                method(since)
        except Exception:  # the decision goes on with what the index has; the next one retries
            log.exception("index catch-up before a duplicate decision failed")

    def index_add(self, submission_id: int, vector: np.ndarray | None, jurisdiction: str | None,
                  created_at: datetime) -> None:
        """After the commit: a failure here loses nothing (the index catches up from the DB)."""
        if self.store is None or vector is None:
            return
        try:
            with self.write_lock:
                self.store.add(submission_id, vector, jurisdiction, created_at)
        except Exception:
            log.exception("index add failed for submission %d; it will be picked up at catch-up", submission_id)

    def _fetch(self, ids: list[int]) -> list[Any]:
        """PastConcern records for the duplicate detector's re-check."""
        from bot.storage.repository import past_concerns

        dedup_module = importlib.import_module("index.dedup")
        past = dedup_module.PastConcern
        session: Session = self.session_factory()
        try:
            return [past(s.id, s.case_id, s.text, s.place, s.created_at)
                    for s in past_concerns(session, ids)]
        finally:
            session.close()

"""Is a new concern one already reported? Neighbours from the index, re-checked, calibrated.

The index proposes the nearest past concerns (e5 cosines alone cannot separate "same noise
source" from "another noise source": both sit around 0.9). Each candidate is re-checked with the
anchors in `index.features` and scored by a logistic model whose parameters live in
`index/calibration.json` (fitted by `shangliang calibrate dedup`; built-in defaults otherwise).
Three outcomes: merge automatically (high probability), ask the resident (middle), new case.

The new concern's anchors are extracted once per decision; the stored candidates' come from a
`ProfileStore` (the index's own when it has one, as `IndexStore` does), so the re-check costs
about a millisecond instead of one jieba segmentation per candidate.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from index.features import FEATURE_NAMES, Profile, has_headlines, pair_features, place_cap, shared_anchors
from index.profiles import ProfileStore

log = logging.getLogger(__name__)

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"
HEADLINE = FEATURE_NAMES.index("headline_overlap")

# Hand-set defaults (used when no calibration file exists): the same place and the same facility
# weigh most; a different named place weighs strongly against.
DEFAULT_CALIBRATION: dict[str, Any] = {
    "features": list(FEATURE_NAMES),
    "weights": [1.5, 2.5, -2.5, 0.3, -1.0, 1.5, 0.8, 0.6, 3.0, 4.0, -0.15, 0.5, 1.0],
    "intercept": -3.5,
    "merge_threshold": 0.85,
    "ask_threshold": 0.5,
    "min_cosine": 0.80,
    # Only neighbours this close to the best cosine are re-checked (bounds latency; e5's band is narrow).
    "recheck_margin": 0.06,
    "max_recheck": 10,
    # Residents re-report after many months ("再次反映"); the time gap is a feature, the window a bound.
    "window_days": 730,
    "source": "built-in defaults",
    # Pairs where either concern is a single sentence (no headline apart from the text) are scored by
    # this model, fitted on the same pairs without the headline feature: otherwise they would be read as
    # "headlines share nothing" and under-scored (see index.features.head_bigrams).
    "without_headline": {
        "weights": [1.5, 2.5, -2.5, 0.3, -1.0, 1.5, 0.8, 0.6, 3.0, 4.0, -0.15, 0.5],
        "intercept": -3.5,
        "merge_threshold": 0.85,
        "ask_threshold": 0.5,
    },
}


@dataclass(frozen=True)
class PastConcern:
    submission_id: int
    case_id: int
    text: str
    place: str | None = None
    created_at: datetime | None = None


@dataclass
class Candidate:
    case_id: int
    submission_id: int
    probability: float
    cosine: float
    reasons: list[str] = field(default_factory=list)
    # Both reports name a place (or district) and they differ: never merged without the resident's word.
    place_conflict: bool = False


@dataclass
class Decision:
    outcome: str  # "merge" | "ask" | "new"
    candidates: list[Candidate]

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


class SearchableIndex(Protocol):
    def search(self, vector: np.ndarray, k: int = 10, *, jurisdiction: str | None = None,
               since: Any = None, until: Any = None) -> Sequence[Any]: ...


def load_calibration(path: str | Path | None = None) -> dict[str, Any]:
    """The calibration file merged over the defaults; defaults when missing or unreadable."""
    calibration = dict(DEFAULT_CALIBRATION)
    path = Path(path) if path else CALIBRATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return calibration
    except (OSError, ValueError) as exc:
        log.warning("calibration file %s unreadable (%s); using defaults", path, exc)
        return calibration
    if list(data.get("features", [])) != list(FEATURE_NAMES):
        log.warning("calibration file %s has other features; using defaults", path)
        return calibration
    calibration.update(data)
    return calibration


def _rescale(p: float, source: tuple[float, float], target: tuple[float, float]) -> float:
    """Piecewise-linear map of a probability so that source (ask, merge) thresholds land on target's:
    the order of candidates and the three outcomes are kept, whichever model scored them."""
    points = [(0.0, 0.0), (min(source), min(target)), (max(source), max(target)), (1.0, 1.0)]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if p <= x1:
            return y0 if x1 <= x0 else y0 + (p - x0) * (y1 - y0) / (x1 - x0)
    return 1.0


def _gap_days(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return abs((a - b).total_seconds()) / 86400.0


class DuplicateDetector:
    """`decide()` one new concern against the past ones the index proposes."""

    def __init__(
        self,
        index: SearchableIndex,
        fetch: Callable[[list[int]], list[PastConcern]],
        calibration: dict[str, Any] | str | Path | None = None,
        k: int = 20,
        profiles: ProfileStore | None = None,
    ) -> None:
        self.index = index
        self.fetch = fetch
        # The index's store (IndexStore persists and fills it) unless one is given; else a private one.
        store = profiles if profiles is not None else getattr(index, "profiles", None)
        self.profiles: ProfileStore = store if isinstance(store, ProfileStore) else ProfileStore()
        if calibration is None or isinstance(calibration, (str, Path)):
            calibration = load_calibration(calibration)
        self.calibration = {**DEFAULT_CALIBRATION, **calibration}
        self.weights = np.asarray(self.calibration["weights"], np.float64)
        self.intercept = float(self.calibration["intercept"])
        fallback = self.calibration.get("without_headline") or DEFAULT_CALIBRATION["without_headline"]
        self.fallback = {**fallback, "weights": np.asarray(fallback["weights"], np.float64)}
        self.k = k

    def probability(self, features: Sequence[float]) -> float:
        """The probability under the main model (all features, the headline included)."""
        return self._logistic(self.weights, self.intercept, features)

    @staticmethod
    def _logistic(weights: np.ndarray, intercept: float, features: Sequence[float]) -> float:
        z = float(np.dot(weights, np.asarray(features, np.float64)) + intercept)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def score_pair(self, text: str, place: str | None, past: PastConcern, cosine: float,
                   created_at: datetime | None = None) -> tuple[float, list[str]]:
        """Probability that `past` is the same issue as the new text, and the shared anchors."""
        probability, reasons, _ = self.assess(text, place, past, cosine, created_at)
        return probability, reasons

    def assess(self, text: str, place: str | None, past: PastConcern, cosine: float,
               created_at: datetime | None = None) -> tuple[float, list[str], bool]:
        """score_pair plus whether the two reports name different places."""
        return self._assess(self.profiles.query_profile(text, place), past, cosine, created_at)

    def _assess(self, new_profile: Profile, past: PastConcern, cosine: float,
                created_at: datetime | None) -> tuple[float, list[str], bool]:
        old_profile = self.profiles.profile_of(past.submission_id, past.text, past.place)
        features = pair_features(new_profile, old_profile, cosine, _gap_days(created_at, past.created_at))
        named = dict(zip(FEATURE_NAMES, features, strict=True))
        # Names of places apart (the learned feature), or the whole places apart at the finest level both
        # name, or the same road with another problem: asked, never merged silently.
        conflict = bool(named["place_conflict"] or named["district_conflict"] or place_cap(new_profile, old_profile))
        return (self._pair_probability(new_profile, old_profile, features), shared_anchors(new_profile, old_profile),
                conflict)

    def _pair_probability(self, a: Profile, b: Profile, features: list[float]) -> float:
        """Main model when both concerns have a headline; otherwise the model without that feature,
        its probability mapped onto the main model's thresholds (so one `outcome()` serves both)."""
        if has_headlines(a, b):
            return self.probability(features)
        fb = self.fallback
        p = self._logistic(fb["weights"], float(fb["intercept"]), features[:HEADLINE] + features[HEADLINE + 1:])
        return _rescale(p, (float(fb["ask_threshold"]), float(fb["merge_threshold"])),
                        (float(self.calibration["ask_threshold"]), float(self.calibration["merge_threshold"])))

    def outcome(self, probability: float, place_conflict: bool = False) -> str:
        # Same issue means same problem at the same place: the learned weights see few near-identical
        # texts about different estates, so a place conflict caps the decision at asking the resident.
        if probability >= float(self.calibration["merge_threshold"]):
            return "ask" if place_conflict else "merge"
        if probability >= float(self.calibration["ask_threshold"]):
            return "ask"
        return "new"

    def decide(
        self,
        text: str,
        vector: np.ndarray,
        place: str | None = None,
        created_at: datetime | None = None,
        jurisdiction: str | None = None,
    ) -> Decision:
        window = float(self.calibration.get("window_days") or 0)
        since = created_at - timedelta(days=window) if (created_at and window) else None
        hits = self.index.search(vector, self.k, jurisdiction=jurisdiction, since=since, until=created_at)
        min_cosine = float(self.calibration["min_cosine"])
        hits = sorted((h for h in hits if h.score >= min_cosine), key=lambda h: -h.score)
        if hits:
            floor = hits[0].score - float(self.calibration["recheck_margin"])
            hits = [h for h in hits if h.score >= floor][: int(self.calibration["max_recheck"])]
        cosines = {int(h.submission_id): float(h.score) for h in hits}
        if not cosines:
            return Decision("new", [])
        best: dict[int, Candidate] = {}
        new_profile = self.profiles.query_profile(text, place)
        for past in self.fetch(list(cosines)):
            cosine = cosines[past.submission_id]
            probability, reasons, conflict = self._assess(new_profile, past, cosine, created_at)
            current = best.get(past.case_id)
            if current is None or probability > current.probability:
                best[past.case_id] = Candidate(past.case_id, past.submission_id, probability, cosine, reasons,
                                               conflict)
        candidates = sorted(best.values(), key=lambda c: (-c.probability, -c.cosine))
        if not candidates:
            return Decision("new", [])
        return Decision(self.outcome(candidates[0].probability, candidates[0].place_conflict), candidates)

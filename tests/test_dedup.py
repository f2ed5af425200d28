"""Same-issue re-check: places and facilities decide, not the cosine alone (fake vectors)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from index.calibrate import fit, fit_with_fallback
from index.dedup import DEFAULT_CALIBRATION, DuplicateDetector, PastConcern, load_calibration
from index.evaluate import best_threshold_accuracy, pairwise_scores, replay
from index.features import FEATURE_NAMES, extract_places, pair_features, place_cap, profile
from index.vector_index import VectorIndex

NOISE_DONGLAN = "A5区东澜湾社区旁边的搅拌站每天半夜还在施工，噪音特别大，老人小孩都睡不着，希望尽快处理。"
NOISE_DONGLAN_AGAIN = "东澜湾社区这边的搅拌站晚上一直轰隆隆响，吵得整栋楼没法休息，已经一个多月了。"
NOISE_OTHER_ESTATE = "A3区丽发新城小区附近的搅拌站夜间作业，噪音扰民，严重影响居民休息。"
LIFT = "A3区梅溪湖路12号楼电梯三天两头坏，老人上下楼很困难，物业一直不修。"


def close_vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Vectors whose cosines sit in e5's compressed band (~0.9), like real concerns."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=dim)
    v = base + 0.33 * np.linalg.norm(base) / np.sqrt(dim) * rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_places_and_facilities_are_extracted() -> None:
    places, districts = extract_places(NOISE_DONGLAN)
    assert any("东澜湾" in p for p in places)
    assert "A5区" in districts
    p = profile(LIFT)
    assert "电梯" in p.facilities
    assert "12" in p.numbers
    assert any("梅溪湖" in x for x in p.places)


def test_same_estate_scores_higher_than_other_estate_at_equal_cosine() -> None:
    detector = DuplicateDetector(VectorIndex(), lambda ids: [])
    same, reasons = detector.score_pair(NOISE_DONGLAN_AGAIN, None, PastConcern(1, 1, NOISE_DONGLAN), 0.93)
    other, _ = detector.score_pair(NOISE_OTHER_ESTATE, None, PastConcern(1, 1, NOISE_DONGLAN), 0.93)
    assert same > other
    assert any("东澜湾" in r for r in reasons)
    features = pair_features(profile(NOISE_OTHER_ESTATE), profile(NOISE_DONGLAN), 0.93)
    assert features[FEATURE_NAMES.index("place_conflict")] == 1.0


def test_headline_overlap_reads_the_first_sentence_not_the_greeting() -> None:
    """Two reposts under one title share their headline; polite openers alone share nothing."""
    def overlap(a: str, b: str) -> float:
        return pair_features(profile(a), profile(b), 0.93)[FEATURE_NAMES.index("headline_overlap")]

    title = "因读书转为非农业户人员希望户口问题能得到解决"
    assert overlap(f"{title}。我1996年因读书户口转为非农，至今没有安置。",
                   f"{title}。我们这些人没田没地，希望能重回原籍。") == 1.0
    # The shorter headline inside the longer one counts in full (overlap coefficient, not Jaccard).
    assert overlap("东澜湾搅拌站噪音。每天晚上都吵得睡不着觉。",
                   "东澜湾搅拌站噪音太大了！半夜还在施工，老人小孩都受不了。") == 1.0
    greeting = "尊敬的领导：您好！"
    assert overlap(greeting + "小区电梯坏了三个月没人修。物业说要等维修基金审批下来。",
                   greeting + "孩子学校门口的红绿灯坏了。早上上学的时候特别危险。") < 0.2
    # A one-sentence concern has no separate headline: its wording is compared as a whole elsewhere.
    assert overlap("幸福小区电梯坏了三个月了，物业不管", "幸福小区路灯坏了三个月了，物业不管") == 0.0
    assert overlap(greeting + "幸福小区电梯坏了。", "幸福小区电梯坏了。后面是很长的一段补充说明文字。") == 0.0


def _detector(texts: dict[int, str], vectors: np.ndarray, calibration: dict | None = None) -> DuplicateDetector:
    index = VectorIndex()
    start = datetime(2026, 3, 1)
    ids = sorted(texts)
    index.add(ids, vectors[ids], None, [start + timedelta(days=i) for i in ids])
    past = {i: PastConcern(i, 100 + i, texts[i], None, start + timedelta(days=i)) for i in ids}
    return DuplicateDetector(index, lambda wanted: [past[i] for i in wanted if i in past], calibration)


def test_decide_returns_one_candidate_per_case_best_first() -> None:
    vectors = close_vectors(4)
    detector = _detector({0: NOISE_DONGLAN, 1: NOISE_OTHER_ESTATE, 2: LIFT}, vectors)
    decision = detector.decide(NOISE_DONGLAN_AGAIN, vectors[3], created_at=datetime(2026, 3, 10))
    assert decision.candidates, "neighbours in the cosine band must be re-checked"
    probabilities = [c.probability for c in decision.candidates]
    assert probabilities == sorted(probabilities, reverse=True)
    assert len({c.case_id for c in decision.candidates}) == len(decision.candidates)
    assert decision.candidates[0].submission_id == 0  # the same estate, not the other one
    best = decision.candidates[0]
    assert decision.outcome == detector.outcome(best.probability, best.place_conflict)


def test_outcomes_follow_thresholds() -> None:
    detector = DuplicateDetector(VectorIndex(), lambda ids: [], {"merge_threshold": 0.8, "ask_threshold": 0.4})
    assert detector.outcome(0.9) == "merge"
    assert detector.outcome(0.9, place_conflict=True) == "ask"  # different estates are never merged silently
    assert detector.outcome(0.5) == "ask"
    assert detector.outcome(0.1) == "new"


def test_nothing_near_means_new() -> None:
    vectors = close_vectors(2)
    detector = _detector({0: LIFT}, vectors, {"min_cosine": 0.999})
    decision = detector.decide(NOISE_DONGLAN, vectors[1])
    assert decision.outcome == "new" and decision.candidates == []


def test_time_window_excludes_old_reports() -> None:
    vectors = close_vectors(2)
    detector = _detector({0: NOISE_DONGLAN}, vectors, {"window_days": 30})
    decision = detector.decide(NOISE_DONGLAN_AGAIN, vectors[1], created_at=datetime(2026, 12, 1))
    assert decision.candidates == []


def test_calibration_file_and_defaults(tmp_path: Path) -> None:
    assert load_calibration(tmp_path / "missing.json")["weights"] == DEFAULT_CALIBRATION["weights"]
    custom = {**DEFAULT_CALIBRATION, "weights": [0.0] * len(FEATURE_NAMES), "intercept": 5.0}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(custom), encoding="utf-8")
    detector = DuplicateDetector(VectorIndex(), lambda ids: [], path)
    assert detector.probability([0.0] * len(FEATURE_NAMES)) == pytest.approx(1 / (1 + np.exp(-5.0)))
    path.write_text(json.dumps({**custom, "features": ["other"]}), encoding="utf-8")
    assert load_calibration(path)["intercept"] == DEFAULT_CALIBRATION["intercept"]


def test_fit_learns_that_place_match_signals_same_issue() -> None:
    rng = np.random.default_rng(3)
    X, y = [], []
    for _ in range(300):
        same = int(rng.random() < 0.4)
        row = [0.0] * len(FEATURE_NAMES)
        row[FEATURE_NAMES.index("cosine")] = rng.normal(0.3 if same else 0.0, 0.3)
        row[FEATURE_NAMES.index("place_match")] = float(rng.random() < (0.8 if same else 0.1))
        X.append(row)
        y.append(same)
    result = fit(X, y)
    weights = dict(zip(FEATURE_NAMES, result["weights"], strict=True))
    assert weights["place_match"] > 1.0
    assert 0 < result["ask_threshold"] <= result["merge_threshold"] < 1


def test_single_sentence_pairs_are_scored_without_the_headline_feature() -> None:
    """A one-sentence concern has no headline: the model fitted without that feature decides, and its
    probability is mapped so that its own ask/merge thresholds land on the main model's."""
    main = {**DEFAULT_CALIBRATION, "weights": [0.0] * len(FEATURE_NAMES), "intercept": -10.0,
            "merge_threshold": 0.8, "ask_threshold": 0.4,
            "without_headline": {"weights": [0.0] * (len(FEATURE_NAMES) - 1), "intercept": 0.0,
                                 "merge_threshold": 0.6, "ask_threshold": 0.3}}
    detector = DuplicateDetector(VectorIndex(), lambda ids: [], main)
    short = PastConcern(1, 1, "幸福小区电梯坏了三个月了，物业不管")
    p, _ = detector.score_pair("幸福小区电梯又坏了，物业不管", None, short, 0.95)
    # Fallback p = 0.5 lies between its thresholds 0.3 and 0.6: mapped between 0.4 and 0.8.
    assert p == pytest.approx(0.4 + (0.5 - 0.3) / (0.6 - 0.3) * 0.4)
    assert detector.outcome(p) == "ask"
    titled = PastConcern(2, 2, "电梯长期停运。幸福小区3号楼电梯坏了三个月，物业一直不修。")
    p, _ = detector.score_pair("电梯长期停运。我们楼的电梯又坏了，老人下不了楼。", None, titled, 0.95)
    assert p == pytest.approx(1 / (1 + np.exp(10.0)))  # both have headlines: the main model


def test_fit_with_fallback_writes_both_models() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, len(FEATURE_NAMES))).tolist()
    y = [int(row[FEATURE_NAMES.index("headline_overlap")] + rng.normal() > 0) for row in X]
    result = fit_with_fallback(X, y)
    assert len(result["weights"]) == len(FEATURE_NAMES)
    assert len(result["without_headline"]["weights"]) == len(FEATURE_NAMES) - 1
    assert dict(zip(FEATURE_NAMES, result["weights"], strict=True))["headline_overlap"] > 0.5


def test_pairwise_scores() -> None:
    truth = ["a", "a", "a", None, "b", "b"]
    predicted = [1, 1, 2, 3, 4, 4]
    scores = pairwise_scores(truth, predicted)
    # true pairs: 3 in a + 1 in b; predicted pairs: (0,1), (4,5) -> both correct.
    assert scores["precision"] == 1.0
    assert scores["recall"] == pytest.approx(0.5)


def test_best_threshold_accuracy() -> None:
    acc, threshold = best_threshold_accuracy([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert acc == 1.0 and 0.2 < threshold <= 0.8


def test_replay_merges_the_same_estate_only() -> None:
    messages = [
        {"id": "1", "text": NOISE_DONGLAN, "time": "2026-03-01 08:00:00"},
        {"id": "2", "text": NOISE_OTHER_ESTATE, "time": "2026-03-02 08:00:00"},
        {"id": "3", "text": NOISE_DONGLAN_AGAIN, "time": "2026-03-03 08:00:00"},
    ]
    vectors = close_vectors(3, seed=5)
    # Fake vectors: let every neighbour through to the re-check; thresholds stay the defaults.
    case_merge, case_ask, top = replay(messages, vectors,
                                       lambda idx, fetch: DuplicateDetector(idx, fetch, {"min_cosine": -1.0}),
                                       progress=False)
    assert top[2] == 0
    assert case_merge[1] == 1 and case_ask[1] == 1  # other estate: its own case
    assert case_ask[2] == 0  # same estate: proposed to the resident (or merged)


def test_same_words_about_another_estate_are_not_merged_automatically() -> None:
    lift = "我们{}的电梯从上个月开始就一直坏着，物业说在等配件，楼里老人天天爬楼，请尽快督促物业修好。"
    vectors = close_vectors(2)
    detector = _detector({0: lift.format("锦绣花园小区8栋")}, vectors)
    decision = detector.decide(lift.format("阳光新城3期12栋"), vectors[1], place="阳光新城3期12栋")
    assert decision.candidates and decision.candidates[0].place_conflict
    assert decision.outcome != "merge"


@pytest.mark.parametrize(("new", "old", "reason"), [
    ("解放路与人民路交叉口的红绿灯坏了，车辆乱闯很危险", "解放路与人民路交叉口的红绿灯坏了好几天", None),
    ("人民路与解放路路口红绿灯坏了", "解放路与人民路交叉口的红绿灯不亮", None),  # one crossing in other words
    ("解放路与人民路交叉口的红绿灯坏了", "解放路与中山路交叉口的红绿灯坏了", "place:roads"),
    ("幸福小区3号楼电梯坏了三天了", "幸福小区5号楼电梯坏了三天了", "place:building"),
    ("解放路的红绿灯坏了，路口很乱", "解放路上的井盖丢了，晚上很危险", "problem"),
    ("幸福小区电梯坏了", "幸福小区3号楼电梯坏了", None),  # one is finer: the same estate
])
def test_place_cap_at_the_finest_level_both_name(new: str, old: str, reason: str | None) -> None:
    assert place_cap(profile(new), profile(old)) == reason


def test_a_place_conflict_caps_a_near_identical_pair_at_ask() -> None:
    detector = DuplicateDetector(VectorIndex(), lambda ids: [])
    texts = ("解放路与人民路交叉口的红绿灯坏了，车辆乱闯很危险", "解放路与中山路交叉口的红绿灯坏了，车辆乱闯很危险")
    probability, _, conflict = detector.assess(texts[0], None, PastConcern(1, 1, texts[1]), 0.99)
    assert conflict is True
    assert detector.outcome(max(probability, 0.99), conflict) == "ask"
    same, _, conflict = detector.assess(texts[0], None, PastConcern(1, 1, texts[0]), 0.99)
    assert conflict is False and detector.outcome(same, conflict) in ("merge", "ask")

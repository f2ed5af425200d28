"""ProfileStore: stored concerns' re-check anchors equal a fresh extraction, whatever path filled them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.text.places import same_place
from index import profiles as profiles_module
from index.dedup import DuplicateDetector, PastConcern
from index.features import pair_features, profile
from index.profiles import ProfileStore
from index.vector_index import VectorIndex

TEXTS = [
    "A5区东澜湾社区旁边的搅拌站每天半夜还在施工，噪音特别大，老人小孩都睡不着，希望尽快处理。",
    "东澜湾小区这边的搅拌站晚上一直轰隆隆响，吵得整栋楼没法休息，已经一个多月了。",
    "ＡＢＣ小区１２３号楼电梯又坏了，８０多岁的老人被困在１８楼下不来",
    "再次反映：梅溪湖路12号楼电梯三天两头坏，物业一直不修。",
]


def test_lookups_equal_fresh_extraction_and_recompute_when_the_text_changes() -> None:
    store = ProfileStore()
    for sid, text in enumerate(TEXTS):
        assert store.profile_of(sid, text, "东澜湾" if sid == 0 else None) == profile(text, "东澜湾" if sid == 0 else None)
    assert store.computed == len(TEXTS)
    assert store.profile_of(2, TEXTS[2]) == profile(TEXTS[2])
    assert store.computed == len(TEXTS)  # served from the store
    # Same id, other text (a database reset reusing ids): never the stale anchors.
    assert store.profile_of(2, TEXTS[3]) == profile(TEXTS[3])
    assert store.computed == len(TEXTS) + 1


def test_a_new_concern_is_segmented_once() -> None:
    store = ProfileStore()
    assert store.query_profile(TEXTS[1]) == profile(TEXTS[1])
    assert store.profile_of(7, TEXTS[1]) == profile(TEXTS[1])  # adopted when it comes back as a candidate
    assert store.computed == 1
    assert store.fill([(8, TEXTS[1], None), (9, TEXTS[1], None), (10, TEXTS[0], None)]) == 1
    assert store.ids() == {7, 8, 9, 10}


def test_save_load_and_other_extraction_code(tmp_path: Path, monkeypatch) -> None:
    store = ProfileStore()
    store.fill((sid, text, None) for sid, text in enumerate(TEXTS))
    store.save(tmp_path)
    loaded = ProfileStore.load(tmp_path)
    assert loaded.ids() == set(range(len(TEXTS)))
    assert all(loaded.profile_of(sid, text) == profile(text) for sid, text in enumerate(TEXTS))
    assert loaded.computed == 0
    monkeypatch.setattr(profiles_module, "anchors_fingerprint", lambda: "other-code")
    assert len(ProfileStore.load(tmp_path)) == 0
    (tmp_path / profiles_module.FILE_NAME).write_bytes(b"torn")
    assert len(ProfileStore.load(tmp_path)) == 0


def test_detector_scores_do_not_depend_on_the_store() -> None:
    """A detector with a filled store decides exactly as one that extracts everything afresh."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(TEXTS) + 1, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex()
    index.add(list(range(len(TEXTS))), vectors[: len(TEXTS)])
    past = {i: PastConcern(i, 100 + i, t) for i, t in enumerate(TEXTS)}

    def fetch(ids: list[int]) -> list[PastConcern]:
        return [past[i] for i in ids]

    filled = ProfileStore()
    filled.fill((i, t, None) for i, t in enumerate(TEXTS))
    a = DuplicateDetector(index, fetch, {"min_cosine": -1.0, "recheck_margin": 2.0}, profiles=filled)
    b = DuplicateDetector(index, fetch, {"min_cosine": -1.0, "recheck_margin": 2.0})
    new = "东澜湾社区搅拌站夜间施工噪音扰民"
    da, db = a.decide(new, vectors[-1]), b.decide(new, vectors[-1])
    assert [(c.case_id, c.probability, c.reasons) for c in da.candidates] == \
        [(c.case_id, c.probability, c.reasons) for c in db.candidates]
    assert filled.computed == len(TEXTS) + 1


def test_same_estate_named_as_xiaoqu_or_shequ_and_full_width_digits() -> None:
    assert same_place("东澜湾小区", "东澜湾社区")
    assert not same_place("阳光小区", "阳光中学")
    a, b = profile("东澜湾社区搅拌站夜间施工"), profile("东澜湾小区的搅拌站晚上很吵")
    features = dict(zip(("cosine", "place_match", "place_conflict"), pair_features(a, b, 0.9)[:3], strict=True))
    assert features["place_match"] == 1.0 and features["place_conflict"] == 0.0
    wide, narrow = profile(TEXTS[2]), profile("ABC小区123号楼电梯又坏了")
    assert "123" in wide.numbers and "123号楼" in wide.places
    assert wide.places & narrow.places


def test_anchors_fingerprint_follows_the_shared_place_reader(tmp_path: Path, monkeypatch) -> None:
    """Anchors are read through bot.text.places: a change there must discard persisted anchors too."""
    from index import features

    before = features.anchors_fingerprint()
    changed = tmp_path / "places.py"
    changed.write_bytes(Path(features.place_reader.__file__).read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(features.place_reader, "__file__", str(changed))
    assert features.anchors_fingerprint() != before

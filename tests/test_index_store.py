"""IndexStore keeps the FAISS index in step with the database (SQLite in a temp dir, fake vectors)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from bot.storage import repository
from bot.storage.db import dispose_engines, session_scope, upgrade
from bot.storage.models import Submission
from index.dedup import DuplicateDetector
from index.store import IndexStore
from index.vector_index import VectorIndex

DIM = 16
TEXTS = [
    "A5区东澜湾社区旁边的搅拌站半夜施工，噪音扰民。",
    "东澜湾社区搅拌站晚上太吵了，睡不着觉。",
    "A3区梅溪湖路12号楼电梯经常坏，物业不修。",
    "丽发新城小区门口路灯不亮，晚上走路很危险。",
]


def fake_vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture()
def db(var_dir: Path) -> Iterator[Callable[[], AbstractContextManager[Session]]]:
    url = f"sqlite:///{var_dir / 'test.db'}"
    upgrade(url)
    yield partial(session_scope, url)
    dispose_engines()


def add_submissions(factory: Callable[[], AbstractContextManager[Session]], count: int,
                    start: int = 0) -> list[int]:
    ids = []
    with factory() as session:
        for i in range(start, start + count):
            sub = repository.create_submission(
                session, text=TEXTS[i % len(TEXTS)], embedding=fake_vector(i), embedding_model="fake",
                jurisdiction="A5区" if i % 2 == 0 else "A3区",
            )
            ids.append(sub.id)
    return ids


def test_catch_up_adds_what_the_db_has(db, var_dir: Path) -> None:
    ids = add_submissions(db, 5)
    store = IndexStore(db, DIM, var_dir / "index")
    assert len(store) == 5
    hit = store.search(fake_vector(2), 1)[0]
    assert hit.submission_id == ids[2]
    # Filtered by the case's jurisdiction.
    assert all(h.submission_id in ids[0::2] for h in store.search(fake_vector(1), 5, jurisdiction="A5区"))


def test_crash_between_commit_and_index_add_loses_nothing(db, var_dir: Path) -> None:
    add_submissions(db, 3)
    store = IndexStore(db, DIM, var_dir / "index")
    store.save()
    # Committed to the DB, but the process "crashed" before store.add(): the index never saw it.
    late = add_submissions(db, 2, start=3)
    restarted = IndexStore(db, DIM, var_dir / "index")
    assert len(restarted) == 5
    assert restarted.search(fake_vector(4), 1)[0].submission_id == late[1]


def test_add_after_commit_and_persistence(db, var_dir: Path) -> None:
    store = IndexStore(db, DIM, var_dir / "index", save_every=1)
    (sid,) = add_submissions(db, 1)
    store.add(sid, fake_vector(0), "A5区")
    reloaded = VectorIndex.load(var_dir / "index")
    assert sid in reloaded


def test_stale_ids_are_dropped(db, var_dir: Path) -> None:
    ids = add_submissions(db, 3)
    store = IndexStore(db, DIM, var_dir / "index")
    store.index.add([99999], fake_vector(50)[None, :])  # an id the DB never had
    store.save()
    restarted = IndexStore(db, DIM, var_dir / "index")
    assert sorted(restarted.index.ids().tolist()) == sorted(ids)


def test_inconsistent_index_is_rebuilt(db, var_dir: Path) -> None:
    ids = add_submissions(db, 4)
    store = IndexStore(db, DIM, var_dir / "index")
    # The stored vector for one id changed under the index (e.g. re-encoded with another model).
    with db() as session:
        session.get(Submission, ids[0]).embedding = fake_vector(77).tobytes()
    store.save()
    restarted = IndexStore(db, DIM, var_dir / "index")
    assert np.allclose(restarted.index.vector(ids[0]), fake_vector(77))


def test_unreadable_or_other_dimension_index_is_rebuilt(db, var_dir: Path) -> None:
    add_submissions(db, 2)
    (var_dir / "index").mkdir()
    (var_dir / "index" / "vectors.npz").write_bytes(b"torn write")
    assert len(IndexStore(db, DIM, var_dir / "index")) == 2
    other = VectorIndex()
    other.add([1], np.ones((1, 8), np.float32))
    other.save(var_dir / "index")
    assert len(IndexStore(db, DIM, var_dir / "index")) == 2


def test_rebuild_and_fetch_follow_merges(db, var_dir: Path) -> None:
    ids = add_submissions(db, 2)
    store = IndexStore(db, DIM, var_dir / "index", catch_up=False)
    assert store.rebuild(progress=False) == 2
    with db() as session:
        target = session.get(Submission, ids[0]).case_id
        repository.merge_submission(session, ids[1], target)
    past = {p.submission_id: p for p in store.fetch(ids)}
    assert past[ids[1]].case_id == past[ids[0]].case_id == target
    detector = DuplicateDetector(store, store.fetch, {"min_cosine": -1.0})
    decision = detector.decide(TEXTS[1], fake_vector(1))
    assert len(decision.candidates) == 1  # two submissions, one case
    assert decision.candidates[0].case_id == target
    assert any("东澜湾" in reason for reason in decision.candidates[0].reasons)


class FakeEncoder:
    """Deterministic vectors from the text (no model needed)."""

    dim = DIM
    name = "fake"

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([fake_vector(sum(map(ord, t))) for t in texts])


def test_import_is_idempotent_and_indexes(var_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import index.commands as commands
    from bot.cli import main
    from bot.config import settings

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{var_dir / 'import.db'}")
    settings.cache_clear()
    monkeypatch.setattr(commands, "_encoder", lambda: FakeEncoder())
    source = var_dir / "history.jsonl"
    rows = [{"id": str(i), "title": f"标题{i}", "text": TEXTS[i], "label": "城乡建设",
             "time": f"2019-01-0{i + 1} 10:00:00"} for i in range(len(TEXTS))]
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    try:
        assert main(["import", str(source), "--labeled"]) == 0
        assert main(["import", str(source), "--labeled"]) == 0  # second run adds nothing
        with session_scope() as session:
            subs = session.query(Submission).order_by(Submission.id).all()
            assert [s.external_id for s in subs] == [f"import:{i}" for i in range(len(TEXTS))]
            assert {s.source for s in subs} == {"import"} and {s.label for s in subs} == {"城乡建设"}
            # Districts are recorded as for live cases; a message naming none has none.
            assert [s.case.jurisdiction for s in subs][:3] == ["A5区", None, "A3区"]
        index = VectorIndex.load(var_dir / "index")
        assert len(index) == len(TEXTS)
        assert main(["reindex"]) == 0
        metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert metrics["indexed"] == len(TEXTS)
    finally:
        dispose_engines()
        settings.cache_clear()


def test_recheck_anchors_are_filled_persisted_and_follow_the_db(db, var_dir: Path) -> None:
    """Re-check anchors of stored concerns are extracted at catch-up, saved beside the index,
    loaded at restart without re-extraction, and dropped with their submissions."""
    from index.features import profile

    ids = add_submissions(db, 4)
    store = IndexStore(db, DIM, var_dir / "index")
    assert store.profiles.ids() == set(ids)
    assert store.profiles.computed == len(TEXTS)
    for sid, text in zip(ids, TEXTS, strict=True):
        assert store.profiles.profile_of(sid, text) == profile(text)
    store.close()

    restarted = IndexStore(db, DIM, var_dir / "index")
    assert restarted.profiles.ids() == set(ids) and restarted.profiles.computed == 0
    detector = DuplicateDetector(restarted, restarted.fetch, {"min_cosine": -1.0})
    assert detector.profiles is restarted.profiles
    decision = detector.decide("东澜湾社区的搅拌站又在夜里施工", fake_vector(1))
    assert decision.candidates
    assert restarted.profiles.computed == 1  # only the new concern was segmented

    with db() as session:
        session.delete(session.get(Submission, ids[0]))
    again = IndexStore(db, DIM, var_dir / "index")
    assert again.profiles.ids() == set(ids[1:])
    assert again.rebuild(progress=False) == 3
    assert again.profiles.ids() == set(ids[1:]) and again.profiles.computed == 0


def test_catch_up_recent_adds_what_another_service_stored(db, var_dir: Path) -> None:
    from datetime import timedelta

    from bot.storage.models import utcnow

    add_submissions(db, 3)
    # Two stores on one database: the second service does not see the first one's new rows by itself.
    mine = IndexStore(db, DIM, var_dir / "index-a")
    other = IndexStore(db, DIM, var_dir / "index-b")
    new_ids = add_submissions(db, 2, start=3)
    for sid in new_ids:
        mine.add(sid, fake_vector(sid - 1))
    assert all(sid not in other.index for sid in new_ids)
    assert other.catch_up_recent(utcnow() - timedelta(minutes=5)) == 2
    assert all(sid in other.index for sid in new_ids)
    assert other.catch_up_recent(utcnow() - timedelta(minutes=5)) == 0  # nothing twice
    hit = other.search(fake_vector(4), k=1)[0]
    assert hit.submission_id == new_ids[1]

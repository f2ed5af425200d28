"""VectorIndex: exact vs HNSW, filters, retirement, persistence (fake vectors, no model)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from index.vector_index import VectorIndex


def unit(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture()
def data() -> np.ndarray:
    return unit(np.random.default_rng(7), 400)


def brute_force(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    sims = vectors @ query
    return [int(ids[i]) for i in np.argsort(-sims)[:k]]


@pytest.mark.parametrize("exact_below", [10**6, 100])
def test_search_matches_brute_force_and_kind_follows_size(data: np.ndarray, exact_below: int) -> None:
    ids = np.arange(1000, 1000 + len(data))
    index = VectorIndex(exact_below=exact_below, ef_search=200)
    index.add(ids, data)
    assert index.kind == ("flat" if exact_below > len(data) else "hnsw")
    assert index.dim == data.shape[1]
    for q in data[:20]:
        got = [h.submission_id for h in index.search(q, 5)]
        assert got == brute_force(data, ids, q, 5)


def test_switches_to_hnsw_when_growing_past_threshold(data: np.ndarray) -> None:
    index = VectorIndex(exact_below=150)
    index.add(range(100), data[:100])
    assert index.kind == "flat"
    index.add(range(100, 200), data[100:200])
    assert index.kind == "hnsw"
    assert len(index) == 200
    assert index.search(data[150], 1)[0].submission_id == 150


def test_jurisdiction_and_time_filters(data: np.ndarray) -> None:
    start = datetime(2026, 1, 1)
    n = len(data)
    jur = ["east" if i % 2 else "west" for i in range(n)]
    times = [start + timedelta(days=i) for i in range(n)]
    index = VectorIndex(exact_below=100, exact_subset_below=50)  # HNSW, both filter paths used
    index.add(range(n), data, jur, times)
    q = data[10]
    east = index.search(q, 10, jurisdiction="east")
    assert east and all(h.submission_id % 2 == 1 for h in east)
    recent = index.search(q, 10, since=start + timedelta(days=300))
    assert recent and all(h.submission_id >= 300 for h in recent)
    window = index.search(q, 50, since=start + timedelta(days=100), until=start + timedelta(days=119))
    assert sorted(h.submission_id for h in window) == list(range(100, 120))
    assert index.search(q, 5, jurisdiction="nowhere") == []
    # A window that lets everything through (the usual 730 days) is searched without a filter: same hits.
    everything = index.search(q, 10, since=start - timedelta(days=1), until=start + timedelta(days=n))
    assert everything == index.search(q, 10)
    index.remove([int(everything[0].submission_id)])  # a tombstone: the filter is needed again
    assert everything[0] not in index.search(q, 10, since=start - timedelta(days=1))


def test_remove_and_replace(data: np.ndarray) -> None:
    index = VectorIndex(exact_below=100)
    index.add(range(len(data)), data)
    assert index.search(data[3], 1)[0].submission_id == 3
    assert index.remove([3, 99999]) == 1
    assert 3 not in index
    assert all(h.submission_id != 3 for h in index.search(data[3], 10))
    # Re-adding an id replaces its vector.
    index.add([4], data[5:6])
    top = index.search(data[5], 2)
    assert {h.submission_id for h in top} == {4, 5}
    assert len(index) == len(data) - 1


def test_compaction_drops_tombstones(data: np.ndarray) -> None:
    index = VectorIndex(exact_below=100)
    index.add(range(len(data)), data)
    index.remove(range(0, 300))
    index.compact()
    assert index.tombstones == 0
    assert len(index) == 100
    assert index.kind == "hnsw"  # exactly at the threshold
    assert index.search(data[350], 1)[0].submission_id == 350


def test_save_load_roundtrip(tmp_path: Path, data: np.ndarray) -> None:
    index = VectorIndex(exact_below=100)
    index.add(range(len(data)), data, ["a"] * len(data), [datetime(2026, 1, 1)] * len(data))
    index.remove([1])
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    assert loaded.kind == "hnsw" and len(loaded) == len(index)
    assert 1 not in loaded
    q = data[2]
    assert [h.submission_id for h in loaded.search(q, 5, jurisdiction="a")] == \
        [h.submission_id for h in index.search(q, 5, jurisdiction="a")]
    assert not list(tmp_path.glob(".vectors-*"))  # no temp file left behind


def test_load_rejects_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        VectorIndex.load(tmp_path)


def test_dimension_mismatch_is_refused(data: np.ndarray) -> None:
    index = VectorIndex()
    index.add([1], data[:1])
    with pytest.raises(ValueError):
        index.add([2], np.ones((1, 8), np.float32))

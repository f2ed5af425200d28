"""`shangliang bench dedup`: index speed and recall at several sizes, and the full decision latency.

Vectors are "real-derived" when a message file is given: real concerns are embedded, and each new
vector is a random real embedding plus noise shaped by their covariance (`around_real`, default
0.5 in the CLI: cosine statistics then match the real ones), then normalised; with
around_real=0 they come from one Gaussian with the real mean and covariance, a far harder,
unclustered case for HNSW. Without a file, an anisotropic synthetic distribution is used.
Queries are fresh draws, never indexed rows.

The full decision (`bench_decision`) times what the intake service does for one new concern:
encode its text, search, re-check. The past concerns' re-check anchors are filled before timing,
as `IndexStore` does at start (`--cold-cache` re-extracts them on every decision instead); the new
concern's own anchors are always extracted inside the timed part.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import faiss
import numpy as np

from index.dedup import DuplicateDetector, PastConcern
from index.features import profile
from index.profiles import ProfileStore
from index.vector_index import VectorIndex


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class VectorSource:
    """Draws vectors like the real ones (mean + covariance), or synthetic anisotropic ones."""

    def __init__(self, real: np.ndarray | None, dim: int = 384, seed: int = 0,
                 around_real: float = 0.0) -> None:
        """`around_real` > 0 draws each vector near a random real embedding (noise of that scale in the
        real covariance's shape), i.e. many paraphrase-like variants of real concerns."""
        self.rng = np.random.default_rng(seed)
        self.real = real if (real is not None and around_real > 0) else None
        self.around_real = around_real
        if real is not None and len(real) >= 50:
            self.dim = real.shape[1]
            self.mean = real.mean(axis=0)
            # Factor of the covariance: draws = mean + z @ factor.
            centred = real - self.mean
            _, s, vt = np.linalg.svd(centred, full_matrices=False)
            self.factor = (s[:, None] * vt) / np.sqrt(len(real) - 1)
            self.kind = f"real-derived ({len(real)} embeddings" + (
                f", around real x noise {around_real})" if self.real is not None else ", gaussian)")
        else:
            self.dim = dim
            self.mean = self.rng.normal(size=dim)
            self.mean *= 3.0 / np.linalg.norm(self.mean)
            spectrum = 1.0 / np.sqrt(np.arange(1, dim + 1))
            self.factor = spectrum[:, None] * np.linalg.qr(self.rng.normal(size=(dim, dim)))[0]
            self.kind = "synthetic anisotropic"

    def draw(self, n: int, chunk: int = 100000) -> np.ndarray:
        out = np.empty((n, self.dim), np.float32)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            z = self.rng.standard_normal((m, self.factor.shape[0]))
            if self.real is not None:
                anchors = self.real[self.rng.integers(0, len(self.real), m)]
                v = anchors + self.around_real * (z @ self.factor)
            else:
                v = self.mean + z @ self.factor
            out[start: start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out


def bench_index(source: VectorSource, n: int, *, queries: int = 500, k: int = 10,
                exact_below: int = 50000, hnsw_m: int = 32, ef_search: int = 128,
                ef_construction: int = 40, build_threads: int = 2,
                progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Build, then measure recall@k against exact search and single-query latency (1 thread)."""
    data = source.draw(n)
    qs = source.draw(queries)
    index = VectorIndex(exact_below=exact_below, hnsw_m=hnsw_m, ef_search=ef_search,
                        ef_construction=ef_construction)
    faiss.omp_set_num_threads(build_threads)
    started = time.perf_counter()
    index.add(np.arange(n, dtype=np.int64), data)
    build_s = time.perf_counter() - started
    memory = index.memory_bytes()
    faiss.omp_set_num_threads(1)
    progress(f"n={n}: {index.kind} built in {build_s:.1f}s")
    exact = faiss.IndexFlatIP(source.dim)
    exact.add(data)
    faiss.omp_set_num_threads(build_threads)
    _, truth = exact.search(qs, k)
    faiss.omp_set_num_threads(1)
    del exact
    latencies = []
    found = []
    for q in qs:
        t = time.perf_counter()
        hits = index.search(q, k)
        latencies.append(time.perf_counter() - t)
        found.append([h.submission_id for h in hits])
    recall = float(np.mean([len(set(f) & set(t.tolist())) / k for f, t in zip(found, truth, strict=False)]))
    return {
        "n": n,
        "kind": index.kind,
        "build_s": round(build_s, 2),
        "index_mb": round(memory / 2**20, 1),
        "process_rss_mb": round(rss_bytes() / 2**20, 1),
        f"recall@{k}": round(recall, 4),
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 3),
        "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 3),
        "hnsw_m": hnsw_m if index.kind == "hnsw" else None,
        "ef_search": ef_search if index.kind == "hnsw" else None,
    }


def bench_decision(source: VectorSource, texts: list[str], encode: Callable[[list[str]], np.ndarray],
                   n: int = 100000, trials: int = 100, detector_kwargs: dict[str, Any] | None = None,
                   index_kwargs: dict[str, Any] | None = None, cold_cache: bool = False,
                   encoder_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Encode + search + re-check for one new concern against an index of n past concerns."""
    load_before = os.getloadavg()
    index = VectorIndex(**(index_kwargs or {}))
    faiss.omp_set_num_threads(2)
    index.add(np.arange(n, dtype=np.int64), source.draw(n),
              None, [datetime(2026, 1, 1) + timedelta(minutes=i) for i in range(n)])
    faiss.omp_set_num_threads(1)
    # Past concerns carry real texts (cycled) so the re-check does real work.
    def fetch(ids: list[int]) -> list[PastConcern]:
        return [PastConcern(i, i, texts[i % len(texts)], None, datetime(2026, 1, 1) + timedelta(minutes=i))
                for i in ids]

    # The service's IndexStore holds every stored concern's re-check anchors (loaded or filled at start).
    profiles = ProfileStore()
    if not cold_cache:
        profiles.fill((i, texts[i % len(texts)], None) for i in range(n))
    # The index holds drawn vectors; force re-checks by accepting every neighbour as a candidate.
    detector = DuplicateDetector(index, fetch, {"min_cosine": -1.0, **(detector_kwargs or {})},
                                 profiles=profiles)
    encode(["预热"])
    rng = np.random.default_rng(1)
    latencies, encode_s, decide_s = [], [], []
    for t in range(trials):
        text = texts[int(rng.integers(len(texts)))][:400] + f"（第{t}次）"
        if cold_cache:
            profiles.clear()
            profile.cache_clear()
        started = time.perf_counter()
        vector = encode([text])[0]
        encoded = time.perf_counter()
        detector.decide(text, vector, created_at=datetime(2026, 6, 1))
        done = time.perf_counter()
        latencies.append(done - started)
        encode_s.append(encoded - started)
        decide_s.append(done - encoded)
    return {
        "n": n,
        "trials": trials,
        "k": detector.k,
        "feature_cache": "cold" if cold_cache else "filled",
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 2),
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 2),
        "encode_p50_ms": round(float(np.percentile(encode_s, 50)) * 1000, 2),
        "encode_p95_ms": round(float(np.percentile(encode_s, 95)) * 1000, 2),
        "search_recheck_p50_ms": round(float(np.percentile(decide_s, 50)) * 1000, 2),
        "search_recheck_p95_ms": round(float(np.percentile(decide_s, 95)) * 1000, 2),
        "index_kind": index.kind,
        "encoder": encoder_info or {},
        # Shared 2-core machine: timings mean little without the load they were taken under.
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }

"""The re-check anchors of stored submissions, kept per submission id so a decision segments only
the new concern.

Why: the duplicate re-check compares the new concern with up to `max_recheck` (10) stored ones.
Extracting one concern's anchors costs ~1-2 ms (jieba), so re-reading every candidate took most of
the 14-19 ms of "search + re-check" at 100k stored concerns (`bench dedup`); a text-keyed LRU did
not help, because at 100k concerns the candidates of a new concern are rarely ones seen recently.

What is kept: every anchor but the bigram set, as ~560 bytes of JSON per submission
(`index.features.pack_anchors`): ~65 MB in memory at 100k, a 55 MB file saved in 0.3 s and loaded
in 0.4 s. The bigrams (most of a Profile's ~28 KB) are recomputed from the text (~0.07 ms). A lookup
costs ~0.15 ms instead of ~1.2 ms; filling costs ~1.2 ms per stored concern, once (100k: ~2 min
at the first start after an upgrade or import).

Consistency: each entry carries a digest of the exact string its anchors were read from
(`index.features.anchor_text(text, place)`); a lookup whose stored text or place differs (or an
id reused after a database reset) recomputes. The persisted file carries
`index.features.anchors_fingerprint()`, so a change of the extraction code or of the jieba user
dictionary discards it. Anchors are therefore always what `index.features.profile()` would return.

Filling: a decision remembers the anchors of its new concern by digest (`_recent`), and the first
lookup of that submission by id adopts them; `IndexStore` loads the persisted file at start and
fills what is missing from the database (catch-up, rebuild, `shangliang import`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from index.features import Profile, anchor_text, anchors_fingerprint, anchors_of, pack_anchors, unpack_anchors
from index.npzfile import save_npz_atomic

log = logging.getLogger(__name__)

FILE_NAME = "profiles.npz"
DIGEST_SIZE = 8


def _digest(full: str) -> bytes:
    return hashlib.blake2b(full.encode("utf-8"), digest_size=DIGEST_SIZE).digest()


class ProfileStore:
    """Submission id -> digest + packed jieba anchors. Thread-safe; computation happens outside the lock."""

    def __init__(self, recent: int = 512) -> None:
        self._by_id: dict[int, bytes] = {}  # digest (DIGEST_SIZE bytes) + pack_anchors(...)
        self._recent: OrderedDict[bytes, bytes] = OrderedDict()  # new concerns whose id is not known yet
        self._recent_max = recent
        self._lock = threading.Lock()
        self.dirty = False
        self.computed = 0  # anchors extracted by this store (for tests and benchmarks)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, submission_id: object) -> bool:
        return submission_id in self._by_id

    def ids(self) -> set[int]:
        return set(self._by_id)

    # ----------------------------------------------------------------- lookups
    def query_profile(self, text: str, place: str | None = None) -> Profile:
        """Anchors of a new concern; remembered so its first lookup as a stored one is free."""
        full = anchor_text(text, place)
        digest = _digest(full)
        with self._lock:
            packed = self._recent.get(digest)
        if packed is None:
            anchors = anchors_of(full)
            self.computed += 1
            with self._lock:
                self._recent[digest] = pack_anchors(anchors)
                while len(self._recent) > self._recent_max:
                    self._recent.popitem(last=False)
            return anchors
        return unpack_anchors(packed, full)

    def profile_of(self, submission_id: int, text: str, place: str | None = None) -> Profile:
        """Anchors of a stored submission (computed and kept on a miss or a stale entry)."""
        full = anchor_text(text, place)
        digest = _digest(full)
        sid = int(submission_id)
        entry = self._by_id.get(sid)
        if entry is not None and entry[:DIGEST_SIZE] == digest:
            return unpack_anchors(entry[DIGEST_SIZE:], full)
        with self._lock:
            packed = self._recent.get(digest)
        if packed is not None:
            anchors = unpack_anchors(packed, full)
        else:
            anchors = anchors_of(full)
            self.computed += 1
            packed = pack_anchors(anchors)
        with self._lock:
            self._by_id[sid] = digest + packed
            self.dirty = True
        return anchors

    # ----------------------------------------------------------------- bulk upkeep
    def fill(self, rows: Iterable[tuple[int, str, str | None]],
             progress: Callable[[int], None] | None = None) -> int:
        """Make sure every (id, text, place) has current anchors; returns how many were computed.
        Identical texts are segmented once."""
        computed = 0
        done: dict[bytes, bytes] = {}
        for sid, text, place in rows:
            full = anchor_text(text, place)
            digest = _digest(full)
            entry = self._by_id.get(int(sid))
            if entry is None or entry[:DIGEST_SIZE] != digest:
                packed = done.get(digest)
                if packed is None:
                    with self._lock:
                        packed = self._recent.get(digest)
                if packed is None:
                    packed = pack_anchors(anchors_of(full))
                    computed += 1
                done[digest] = packed
                with self._lock:
                    self._by_id[int(sid)] = digest + packed
                    self.dirty = True
            if progress is not None:
                progress(1)
        self.computed += computed
        return computed

    def drop(self, ids: Iterable[int]) -> int:
        removed = 0
        with self._lock:
            for sid in ids:
                if self._by_id.pop(int(sid), None) is not None:
                    removed += 1
            self.dirty = self.dirty or removed > 0
        return removed

    def keep_only(self, ids: set[int]) -> int:
        """Forget every id not in `ids` (submissions no longer in the database or the index)."""
        return self.drop([sid for sid in list(self._by_id) if sid not in ids])

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._recent.clear()
            self.dirty = True

    # ----------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """One file, written atomically (temp file + rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / FILE_NAME
        with self._lock:
            items = list(self._by_id.items())
            self.dirty = False
        ids = np.fromiter((sid for sid, _ in items), np.int64, len(items))
        lengths = np.fromiter((len(blob) for _, blob in items), np.int64, len(items))
        blob = np.frombuffer(b"".join(b for _, b in items), np.uint8)
        return save_npz_atomic(target, ids=ids, lengths=lengths, blob=blob,
                               fingerprint=np.array(anchors_fingerprint()))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ProfileStore:
        """The persisted store, or an empty one when missing, unreadable or from other extraction code."""
        store = cls()
        path = Path(directory) / FILE_NAME
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["fingerprint"]) != anchors_fingerprint():
                    log.info("re-check anchors at %s were extracted by other code; they are recomputed", path)
                    store.dirty = True
                    return store
                ids, lengths, blob = data["ids"], data["lengths"], data["blob"].tobytes()
        except FileNotFoundError:
            return store
        except Exception as exc:  # a torn or foreign file is recomputed, never trusted
            log.warning("re-check anchors at %s unreadable (%s); they are recomputed", path, exc)
            store.dirty = True
            return store
        if ids.size != lengths.size or int(lengths.sum()) != len(blob):
            log.warning("re-check anchors at %s are inconsistent; they are recomputed", path)
            store.dirty = True
            return store
        ends = np.cumsum(lengths).tolist()
        starts = [0, *ends[:-1]]
        store._by_id = {int(sid): blob[a:b] for sid, a, b in zip(ids.tolist(), starts, ends, strict=True)}
        return store

"""The intake service's FAISS index, kept in step with the database (the system of record).

At start the persisted index is loaded and caught up: vectors stored in the DB but missing from
the index are added (e.g. after a crash between the DB commit and the index add), ids no longer
in the DB are dropped, and anything inconsistent (unreadable file, other dimension, a stored
vector that differs from the DB) triggers a full rebuild. The index is saved every `save_every`
adds and on `close()`; losing unsaved adds costs nothing but a catch-up at the next start.

Beside the vectors the store keeps the re-check anchors of every indexed submission
(`self.profiles`, `index.profiles.ProfileStore`, file `profiles.npz`): loaded at start, dropped with
stale ids, filled from the database for ids that lack them (catch-up, rebuild), so a decision never
segments a stored concern again. The detector picks it up from `IndexStore.profiles`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import Case, Submission
from index.dedup import PastConcern
from index.profiles import ProfileStore
from index.vector_index import Hit, VectorIndex

log = logging.getLogger(__name__)

SessionFactory = Callable[[], AbstractContextManager[Session]]
CHUNK = 2000


def _index_settings() -> dict[str, int]:
    try:
        from bot.config import settings

        cfg = settings().get("index", {})
    except Exception:  # settings are optional for library use (tests, scripts)
        cfg = {}
    return {
        "exact_below": int(cfg.get("exact_below", 50000)),
        "hnsw_m": int(cfg.get("hnsw_m", 32)),
        "ef_search": int(cfg.get("ef_search", 128)),
    }


class IndexStore:
    """Owns one VectorIndex; the only writer (the intake service)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        encoder_dim: int,
        path: str | Path,
        *,
        save_every: int = 200,
        catch_up: bool = True,
        **index_settings: int,
    ) -> None:
        self.session_factory = session_factory
        self.dim = int(encoder_dim)
        self.path = Path(path)
        self.save_every = save_every
        self.index_settings = {**_index_settings(), **index_settings}
        self._lock = threading.RLock()
        self._unsaved = 0
        self.index = self._load()
        self.profiles = ProfileStore.load(self.path)
        if catch_up:
            self.catch_up()

    # ----------------------------------------------------------------- start-up
    def _empty(self) -> VectorIndex:
        return VectorIndex(self.dim, **self.index_settings)

    def _load(self) -> VectorIndex:
        try:
            index = VectorIndex.load(self.path, **self.index_settings)
        except FileNotFoundError:
            return self._empty()
        except Exception as exc:  # a torn or foreign file is rebuilt, never trusted
            log.warning("index at %s unreadable (%s); it will be rebuilt", self.path, exc)
            return self._empty()
        if index.dim not in (None, self.dim):
            log.warning("index dimension %s != encoder %s; rebuilding", index.dim, self.dim)
            return self._empty()
        return index

    def _rows(self, session: Session, ids: list[int] | None = None) -> Iterator[tuple[Any, ...]]:
        query = (
            select(Submission.id, Submission.embedding, Case.jurisdiction, Submission.created_at)
            .join(Case, Case.id == Submission.case_id)
            .where(Submission.embedding.isnot(None))
            .order_by(Submission.id)
        )
        if ids is not None:
            query = query.where(Submission.id.in_(ids))
        yield from session.execute(query.execution_options(yield_per=CHUNK))

    def _db_ids(self) -> set[int]:
        with self.session_factory() as session:
            rows = session.execute(select(Submission.id).where(Submission.embedding.isnot(None)))
            return {int(r[0]) for r in rows}

    def _add_rows(self, rows: list[tuple[Any, ...]]) -> int:
        good = [r for r in rows if r[1] and len(r[1]) == 4 * self.dim]
        if len(good) < len(rows):
            log.warning("%d stored vectors have another dimension; skipped", len(rows) - len(good))
        if good:
            vectors = np.frombuffer(b"".join(r[1] for r in good), np.float32).reshape(len(good), self.dim)
            self.index.add([r[0] for r in good], vectors, [r[2] for r in good], [r[3] for r in good])
        return len(good)

    def _consistent_sample(self, n: int = 20) -> bool:
        """Do a few indexed vectors equal the ones in the DB?"""
        ids = self.index.ids()
        if ids.size == 0:
            return True
        sample = np.random.default_rng(0).choice(ids, size=min(n, ids.size), replace=False).tolist()
        with self.session_factory() as session:
            for sid, blob, _jur, _when in self._rows(session, [int(s) for s in sample]):
                stored = self.index.vector(sid)
                if stored is None or not np.allclose(stored, np.frombuffer(blob, np.float32), atol=1e-5):
                    return False
        return True

    def catch_up(self) -> dict[str, int]:
        """Bring the index in line with the DB; returns what was done."""
        with self._lock:
            if not self._consistent_sample():
                log.warning("index disagrees with the database; rebuilding")
                return {"rebuilt": self.rebuild(progress=False)}
            db_ids = self._db_ids()
            index_ids = set(self.index.ids().tolist())
            stale = index_ids - db_ids
            missing = sorted(db_ids - index_ids)
            removed = self.index.remove(stale)
            added = 0
            with self.session_factory() as session:
                for start in range(0, len(missing), CHUNK):
                    added += self._add_rows(list(self._rows(session, missing[start: start + CHUNK])))
            profiled = self.fill_profiles()
            if added or removed or profiled:
                log.info("index caught up: %d added, %d dropped, %d re-check anchors extracted",
                         added, removed, profiled)
                self.save()
            return {"added": added, "removed": removed, "profiled": profiled, "size": len(self.index)}

    def fill_profiles(self, progress: bool = False) -> int:
        """Re-check anchors for every indexed submission that lacks them; forget the others.
        About 1-2 ms per concern (jieba), so only a first start or an import takes long."""
        from tqdm import tqdm

        with self._lock:
            live = {int(i) for i in self.index.ids().tolist()}
            self.profiles.keep_only(live)
            todo = sorted(live - self.profiles.ids())
            if not todo:
                return 0
            if len(todo) >= 1000:
                log.info("extracting re-check anchors of %d stored concerns (~1 ms each, once)", len(todo))
            computed = 0
            with tqdm(total=len(todo), disable=not progress, desc="re-check anchors", unit="msg") as bar:
                for start in range(0, len(todo), CHUNK):
                    rows = fetch_past_concerns(self.session_factory, todo[start: start + CHUNK])
                    computed += self.profiles.fill(((p.submission_id, p.text, p.place) for p in rows),
                                                   progress=bar.update)
            return computed

    def rebuild(self, progress: bool = True) -> int:
        """Build a fresh index from every stored vector, then swap it in and save."""
        from tqdm import tqdm

        with self._lock:
            total = len(self._db_ids())
            fresh = self._empty()
            previous, self.index = self.index, fresh
            try:
                with self.session_factory() as session, tqdm(
                    total=total, disable=not progress, desc="reindex", unit="vec"
                ) as bar:
                    batch: list[tuple[Any, ...]] = []
                    for row in self._rows(session):
                        batch.append(tuple(row))
                        if len(batch) >= CHUNK:
                            bar.update(self._add_rows(batch))
                            batch = []
                    bar.update(self._add_rows(batch))
            except BaseException:
                self.index = previous
                raise
            self.fill_profiles(progress=progress)
            self.save()
            return len(self.index)

    def catch_up_recent(self, since: datetime) -> int:
        """Add what other intake services stored lately: rows above the highest indexed id, or created
        after `since` (a lower id can commit after a higher one). Cheap (two indexed range conditions,
        few rows), so it runs before every duplicate decision when several services share a database."""
        from sqlalchemy import or_

        with self._lock:
            ids = self.index.ids()
            top = int(ids.max()) if ids.size else 0
            query = (
                select(Submission.id, Submission.embedding, Case.jurisdiction, Submission.created_at)
                .join(Case, Case.id == Submission.case_id)
                .where(Submission.embedding.isnot(None), or_(Submission.id > top, Submission.created_at >= since))
                .order_by(Submission.id)
            )
            with self.session_factory() as session:
                rows = [r for r in session.execute(query) if int(r[0]) not in self.index]
            added = self._add_rows(rows) if rows else 0
            if added:
                self._unsaved += added
                log.debug("index caught up with %d submission(s) stored by another service", added)
            return added

    # ----------------------------------------------------------------- service use
    def add(self, submission_id: int, vector: np.ndarray, jurisdiction: str | None = None,
            created_at: datetime | None = None) -> None:
        """Call after the DB commit that stored this submission's embedding."""
        with self._lock:
            self.index.add([submission_id], np.asarray(vector, np.float32).reshape(1, -1),
                           [jurisdiction], [created_at])
            self._unsaved += 1
            if self._unsaved >= self.save_every:
                self.save()

    def remove(self, submission_ids: list[int]) -> int:
        with self._lock:
            self.profiles.drop(submission_ids)
            return self.index.remove(submission_ids)

    def search(self, vector: np.ndarray, k: int = 10, *, jurisdiction: str | None = None,
               since: Any = None, until: Any = None) -> list[Hit]:
        with self._lock:
            return self.index.search(vector, k, jurisdiction=jurisdiction, since=since, until=until)

    def fetch(self, ids: list[int]) -> list[PastConcern]:
        """Past concerns for DuplicateDetector (see `fetch_past_concerns`)."""
        return fetch_past_concerns(self.session_factory, ids)

    def save(self) -> None:
        with self._lock:
            self.index.save(self.path)
            if self.profiles.dirty:
                self.profiles.save(self.path)
            self._unsaved = 0

    def close(self) -> None:
        if self._unsaved:
            self.save()
        elif self.profiles.dirty:  # anchors learnt from decisions; the vectors file is current
            with self._lock:
                self.profiles.save(self.path)

    def __len__(self) -> int:
        return len(self.index)


def fetch_past_concerns(session_factory: SessionFactory, ids: list[int]) -> list[PastConcern]:
    """Read past concerns by submission id; the case id is read now, so it follows merges."""
    if not ids:
        return []
    with session_factory() as session:
        rows = session.execute(
            select(Submission.id, Submission.case_id, Submission.text, Submission.place,
                   Submission.created_at, Submission.title).where(Submission.id.in_(ids))
        )
        return [
            PastConcern(int(r[0]), int(r[1]), f"{r[5]}。{r[2]}" if r[5] else r[2], r[3], r[4])
            for r in rows
        ]

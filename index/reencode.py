"""Bring stored concern vectors up to date with the current encoder (`shangliang reindex --reencode`).

Every submission keeps the vector the intake service computed and the name of the encoder variant
that made it (`Submission.embedding_model`, the encoder's `.name`). The name changes with the token
limit, int8 and the runtime; vectors of two variants are not comparable, yet the FAISS index would
mix them. This module counts stored vectors per encoder name and re-encodes the outdated ones.

Re-encoding goes in batches, each committed on its own: a run that stops (crash, Ctrl-C, a failing
encoder) keeps what it did, and the next run skips those rows because they now carry the current
name. The caller rebuilds the index afterwards (the vectors changed in place, which index catch-up
does not look for).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from bot.storage.models import Submission
from index.evaluate import message_text

log = logging.getLogger(__name__)

SessionFactory = Callable[[], AbstractContextManager[Session]]
DEFAULT_BATCH = 64
# Labels for rows that have no usable encoder name, so counts stay JSON objects with string keys.
NO_VECTOR = "(no vector)"
UNNAMED = "(unnamed)"
COMMAND = "shangliang reindex --reencode"


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class ReencodeResult:
    encoder: str
    reencoded: int = 0
    skipped: int = 0  # rows that already carried the current encoder's vector
    by_model: dict[str, int] = field(default_factory=dict)  # re-encoded rows per previous encoder name
    seconds: float = 0.0

    def metrics(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "reencoded": self.reencoded, "skipped": self.skipped,
                "by_model": dict(sorted(self.by_model.items())), "seconds": round(self.seconds, 2)}


def concern_text(text: str, title: str | None = None) -> str:
    """The text a stored concern's vector is made from. `shangliang import` encodes
    `index.evaluate.message_text` (title, then text); a live concern has no title, so this is the text
    the intake service encoded. Using the same function keeps a re-encoded vector equal to a fresh one."""
    return message_text({"title": title, "text": text})


def _outdated(current: str) -> Any:
    """Rows to re-encode: no vector, no recorded encoder, or another encoder than `current`
    (`!=` alone would miss NULL names: SQL comparisons with NULL are never true)."""
    return or_(Submission.embedding.is_(None), Submission.embedding_model.is_(None),
               Submission.embedding_model != current)


def vectors_by_model(session_factory: SessionFactory) -> dict[str, int]:
    """Stored submissions per encoder name; NO_VECTOR counts those without a vector, UNNAMED those
    whose vector has no recorded encoder."""
    with session_factory() as session:
        rows = session.execute(
            select(Submission.embedding_model, func.count(Submission.id))
            .where(Submission.embedding.isnot(None))
            .group_by(Submission.embedding_model)
        ).all()
        missing = session.execute(
            select(func.count(Submission.id)).where(Submission.embedding.is_(None))
        ).scalar_one()
    counts = {(name or UNNAMED): int(n) for name, n in rows}
    if missing:
        counts[NO_VECTOR] = int(missing)
    return counts


def outdated_counts(counts: dict[str, int], current: str) -> dict[str, int]:
    """The part of `vectors_by_model` that `reencode_outdated` would touch."""
    return {name: n for name, n in counts.items() if name != current and n}


def outdated_warning(counts: dict[str, int], current: str) -> str | None:
    """One log line for the intake service's start-up, or None when every stored vector is current.
    Rows without a vector are left out: the service's start-up backfill encodes those itself."""
    other = {k: v for k, v in outdated_counts(counts, current).items() if k != NO_VECTOR}
    if not other:
        return None
    detail = ", ".join(f"{name}: {n}" for name, n in sorted(other.items()))
    return (f"{sum(other.values())} stored concern vectors were made by another encoder than {current} "
            f"({detail}); duplicate search compares them with new ones until `{COMMAND}` is run")


def reencode_outdated(session_factory: SessionFactory, encoder: TextEncoder, *,
                      batch_size: int = DEFAULT_BATCH, progress: bool = True) -> ReencodeResult:
    """Re-encode every submission whose vector is missing or from another encoder, `batch_size` at a
    time, committing each batch. Exceptions (the encoder's included) propagate; the committed
    batches stay done, so calling again resumes."""
    from tqdm import tqdm

    started = time.monotonic()
    current = str(encoder.name)
    before = vectors_by_model(session_factory)
    result = ReencodeResult(encoder=current, skipped=before.get(current, 0))
    by_model: Counter[str] = Counter()
    table = Submission.__table__
    # Core executemany: one UPDATE statement for the whole batch, no ORM objects to load.
    write = (table.update().where(table.c.id == bindparam("sid"))
             .values(embedding=bindparam("vec"), embedding_model=bindparam("name")))
    last_id = 0
    total = sum(outdated_counts(before, current).values())
    with tqdm(total=total, disable=not progress, desc="re-encode", unit="msg") as bar:
        while True:
            # Keyset paging by id: a row that cannot leave the outdated set (e.g. a concurrent writer
            # storing an old name again) is passed over once instead of being fetched forever.
            with session_factory() as session:
                rows = session.execute(
                    select(Submission.id, Submission.title, Submission.text, Submission.embedding_model,
                           Submission.embedding.is_(None))
                    .where(_outdated(current), Submission.id > last_id)
                    .order_by(Submission.id).limit(max(1, int(batch_size)))
                ).all()
            if not rows:
                break
            # Encode outside any transaction: a batch can take seconds and SQLite has one writer.
            vectors = np.asarray(encoder.encode([concern_text(r[2], r[1]) for r in rows]), np.float32)
            if vectors.shape != (len(rows), encoder.dim):
                raise ValueError(f"encoder {current} returned shape {vectors.shape} for {len(rows)} texts")
            with session_factory() as session:
                session.execute(write, [{"sid": int(r[0]), "vec": vec.tobytes(), "name": current}
                                        for r, vec in zip(rows, vectors, strict=True)])
                session.commit()
            by_model.update(NO_VECTOR if r[4] else (r[3] or UNNAMED) for r in rows)
            result.reencoded += len(rows)
            last_id = int(rows[-1][0])
            bar.update(len(rows))
    result.by_model = dict(by_model)
    result.seconds = time.monotonic() - started
    log.info("re-encoded %d stored concerns with %s in %.1f s", result.reencoded, current, result.seconds)
    return result

"""Concern embeddings for training and evaluation, cached on disk by a hash of the texts."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np

from bot.config import var_dir

log = logging.getLogger(__name__)


def embed_texts(texts: Sequence[str], cache: bool = True) -> np.ndarray | None:
    """Encode with the default encoder; None when no encoder is available (the classifier then runs
    on lexical features alone)."""
    if not texts:
        return None
    try:
        from index.encoder import default_encoder

        encoder = default_encoder()
    except Exception as exc:  # missing model folder or package: degrade, do not fail
        log.warning("no encoder available (%s); topic classifier uses lexical features only", exc)
        return None
    digest = hashlib.sha256(str(encoder.name).encode("utf-8"))
    for text in texts:
        digest.update(text.encode("utf-8") + b"\x1e")
    path = var_dir() / "cache" / "embeddings" / f"{digest.hexdigest()[:20]}.npy"
    if cache and path.exists():
        return np.load(path)
    vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors

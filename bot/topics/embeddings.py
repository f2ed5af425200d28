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
    vectors = _encode_with_progress(encoder, list(texts))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def _encode_with_progress(encoder, texts: list[str], chunk: int = 128) -> np.ndarray:
    """Encode in length-sorted chunks with a progress bar: thousands of long messages take many minutes
    on two cores, and a silent command looks hung."""
    if len(texts) <= chunk:
        return np.asarray(encoder.encode(texts), dtype=np.float32)
    from tqdm import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), int(encoder.dim)), dtype=np.float32)
    with tqdm(total=len(texts), desc="encoding", unit="text") as bar:
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            out[part] = np.asarray(encoder.encode([texts[i] for i in part]), dtype=np.float32)
            bar.update(len(part))
    return out


def paired(vectors: np.ndarray, headline_vectors: np.ndarray | None = None) -> np.ndarray:
    """Text and headline vectors side by side, the topic model's embedding input. Without headline
    vectors (a one-sentence concern is its own headline) the text's vector stands in."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    heads = vectors if headline_vectors is None else np.atleast_2d(np.asarray(headline_vectors, np.float32))
    return np.hstack([vectors, heads])


def embed_concerns(texts: Sequence[str], cache: bool = True) -> np.ndarray | None:
    """Paired vectors for training and evaluation: each text's embedding and its headline's (encoded only
    where the headline differs from the text)."""
    from bot.topics.concepts import headline

    vectors = embed_texts(texts, cache=cache)
    if vectors is None:
        return None
    heads = [headline(t) for t in texts]
    differ = [i for i, (t, h) in enumerate(zip(texts, heads, strict=True)) if h != t.strip()]
    head_vectors = vectors.copy()
    if differ:
        encoded = embed_texts([heads[i] for i in differ], cache=cache)
        if encoded is not None:
            head_vectors[differ] = encoded
    return paired(vectors, head_vectors)

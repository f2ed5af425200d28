"""The encoder as the Rasa process sees it: one shared instance, a token cap, a cache by text.

Why a cap: `/model/parse` runs while the resident waits, and the encoder's cost is linear in tokens
(~0.4 ms per token, int8 ONNX, 1 thread). Intents are carried by a message's first sentence or two, so
the NLU reads the head only (`max_seq_length` in the component's config); the intake service still
encodes the whole concern with its own settings.

Texts are encoded one at a time, never in padded batches: the int8 graph quantises activations per
tensor, so padding shifts a short text's vector (cosine ~0.999 to its unbatched vector), and training
features must be exactly what `/model/parse` computes for the same text.

Why a cache: short answers ("好的", "不用了", "是的") recur across residents and are the most common
messages; a hit costs nothing. Entries are keyed by the exact text, so a hit returns the same vector.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.encoder import Encoder, clean_text, encoder_from_settings

# Code that shapes the features (relative to the repository root): this package and the encoder.
FEATURE_CODE_PATHS = ["bot/nlu", "index/encoder.py", "index/onnx_runtime.py"]

_shared: dict[tuple[int, int], Encoder] = {}
_shared_lock = threading.Lock()


def shared_encoder(max_seq_length: int, threads: int = 1) -> Encoder:
    """One encoder per (token cap, threads) per process, built on first use from intake.yml's
    encoder settings (same folder, runtime and int8 switch as the intake service)."""
    key = (int(max_seq_length), int(threads))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = encoder_from_settings(max_seq_length=key[0], threads=key[1])
        return _shared[key]


def forget_shared_encoders() -> None:
    """Drop the shared instances (tests that change settings)."""
    with _shared_lock:
        _shared.clear()


class CachedVectors:
    """`Encoder.encode` with a bounded LRU cache keyed by the cleaned text."""

    def __init__(self, encoder: Encoder, cache_size: int = 4096) -> None:
        self.encoder = encoder
        self.cache_size = max(0, int(cache_size))
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (len(texts), dim), L2-normalised; each text not cached is encoded on its own."""
        keys = [clean_text(t) for t in texts]
        out = np.zeros((len(keys), self.encoder.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                hit = self._cache.get(key)
                if hit is None:
                    missing.setdefault(key, []).append(i)
                else:
                    self._cache.move_to_end(key)
                    out[i] = hit
        if missing:
            fresh = [self.encoder.encode([key])[0] for key in missing]
            with self._lock:
                for (key, rows), vector in zip(missing.items(), fresh, strict=True):
                    out[rows] = vector
                    if self.cache_size:
                        self._cache[key] = vector
                        self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out


def encoder_fingerprint() -> str:
    """Which vectors the configured encoder gives, without loading it: the variant name (folder, token
    limit, int8, runtime), the query prefix, and a digest of the folder's weights and config
    (`index.onnx_runtime.source_digest`, which also covers the exporter, ONNX Runtime and torch versions)."""
    from bot.config import resolve_path, settings
    from index.encoder import configured_name

    cfg = dict(settings().get("encoder") or {})
    path = resolve_path(cfg["model_path"])
    weights = "missing"
    if (path / "config.json").is_file():
        from index.onnx_runtime import source_digest

        weights = source_digest(path, bool(cfg.get("quantize", False)))
    return f"encoder={configured_name()};prefix={cfg.get('query_prefix', 'query: ')!r};weights={weights}"


def feature_fingerprint(root: Path | None = None) -> str:
    """The encoder's fingerprint plus a digest of the feature code under `root` (default: this checkout)."""
    from bot.config import REPO_ROOT

    root = root or REPO_ROOT
    digest = hashlib.sha256()
    for rel in FEATURE_CODE_PATHS:
        path = root / rel
        files = sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return f"{encoder_fingerprint()};code={digest.hexdigest()[:16]}"

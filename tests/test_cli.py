"""The CLI wires every part in, and the Rasa model cache key follows the training data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.commands.train import HASHED_PATHS, training_data_hash
from bot.nlu.vectors import FEATURE_CODE_PATHS


def test_every_documented_command_is_registered() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ["run", "serve", "train", "build-encoder", "import", "reindex", "eval", "bench", "calibrate"]:
        assert name in sub.choices, f"missing subcommand {name}"


def _copy_hashed_inputs(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    for rel in [*HASHED_PATHS, *FEATURE_CODE_PATHS]:
        src = repo / rel
        if src.is_dir():
            shutil.copytree(src, tmp_path / rel)
        elif src.exists():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, tmp_path / rel)


def test_model_hash_changes_with_training_data_only(tmp_path: Path) -> None:
    _copy_hashed_inputs(tmp_path)
    before = training_data_hash(tmp_path)
    assert training_data_hash(tmp_path) == before
    (tmp_path / "README.md").write_text("not training data", encoding="utf-8")
    assert training_data_hash(tmp_path) == before
    extra = tmp_path / "nlu_data" / "nlu" / "extra.yml"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text('version: "3.1"\nnlu: []\n', encoding="utf-8")
    assert training_data_hash(tmp_path) != before


def test_model_hash_follows_the_nlu_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The NLU reads the encoder's vectors: another variant or other feature code must retrain."""
    from bot.config import settings

    _copy_hashed_inputs(tmp_path)
    config = tmp_path / "config.yml"
    without = training_data_hash(tmp_path)
    config.write_text("pipeline:\n  - name: bot.nlu.encoder_featurizer.EncoderFeaturizer\n", encoding="utf-8")
    before = training_data_hash(tmp_path)
    assert before != without
    monkeypatch.setenv("SHANGLIANG_ENCODER_RUNTIME", "torch")  # int8 torch vectors, not ONNX Runtime's
    settings.cache_clear()
    try:
        assert training_data_hash(tmp_path) != before
    finally:
        monkeypatch.delenv("SHANGLIANG_ENCODER_RUNTIME")
        settings.cache_clear()
    assert training_data_hash(tmp_path) == before
    (tmp_path / "bot" / "nlu" / "vectors.py").write_text("# changed\n", encoding="utf-8")
    assert training_data_hash(tmp_path) != before
    # A pipeline without bot.nlu components ignores the encoder: no retrain when only it changes.
    config.write_text("pipeline:\n  - name: DIETClassifier\n", encoding="utf-8")
    plain = training_data_hash(tmp_path)
    monkeypatch.setenv("SHANGLIANG_ENCODER_RUNTIME", "torch")
    settings.cache_clear()
    try:
        assert training_data_hash(tmp_path) == plain
    finally:
        monkeypatch.delenv("SHANGLIANG_ENCODER_RUNTIME")
        settings.cache_clear()

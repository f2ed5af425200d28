"""bot.nlu.EncoderFeaturizer: the Rasa component that adds the project encoder's sentence vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu import vectors
from bot.nlu.encoder_featurizer import META_FILE, EncoderFeaturizer, EncoderMismatch

TEXTS = ["就这样吧，帮我交上去", "让我再想想", "我们小区5号楼电梯坏了三个月了，物业一直不修"]


@pytest.fixture()
def storage(tmp_path: Path) -> LocalModelStorage:
    (tmp_path / "storage").mkdir()  # Rasa creates it before any component writes
    return LocalModelStorage(tmp_path / "storage")


def _component(storage: LocalModelStorage, resource: Resource, **config: object) -> EncoderFeaturizer:
    full = {**EncoderFeaturizer.get_default_config(), **config}
    context = ExecutionContext(GraphSchema({}), node_name="encoder_featurizer")
    return EncoderFeaturizer.create(full, storage, resource, context)


def _training_data() -> TrainingData:
    return TrainingData([Message(data={TEXT: t, INTENT: "x"}) for t in TEXTS])


def test_adds_one_unit_sentence_vector_per_text(encoder_model_path: Path, storage: LocalModelStorage) -> None:
    component = _component(storage, Resource("enc"))
    messages = [Message(data={TEXT: t}) for t in TEXTS] + [Message(data={INTENT: "affirm"})]
    component.process(messages)
    dim = component.vectors().encoder.dim
    for message in messages[:-1]:
        [sentence] = message.features  # one feature, from this component
        assert sentence.features.shape == (1, dim) and sentence.features.dtype == np.float32
        assert sentence.type == FEATURE_TYPE_SENTENCE and sentence.attribute == TEXT
        assert sentence.origin == "encoder_featurizer" and sentence.is_dense()
        assert np.linalg.norm(sentence.features) == pytest.approx(1.0, abs=1e-5)
    assert messages[-1].features == []  # no text: nothing to add
    # The feature is the encoder's vector of that text alone (as /model/parse computes it), at the cap.
    expected = component.vectors().encoder.encode([TEXTS[2]])[0]
    np.testing.assert_allclose(messages[2].get_dense_features(TEXT, [])[1].features[0], expected, atol=1e-6)
    assert component.vectors().encoder.max_seq_length == EncoderFeaturizer.get_default_config()["max_seq_length"]


def test_train_records_the_encoder_and_load_checks_it(encoder_model_path: Path,
                                                      storage: LocalModelStorage) -> None:
    resource = Resource("enc")
    component = _component(storage, resource)
    data = _training_data()
    assert component.train(data) == resource
    component.process_training_data(data)
    assert all(m.get_dense_features(TEXT, [])[1] is not None for m in data.training_examples)
    name = component.vectors().encoder.name
    with storage.read_from(resource) as directory:
        assert json.loads((directory / META_FILE).read_text(encoding="utf-8"))["encoder"] == name

    config = {**EncoderFeaturizer.get_default_config()}
    context = ExecutionContext(GraphSchema({}), node_name="encoder_featurizer")
    loaded = EncoderFeaturizer.load(config, storage, resource, context)
    assert loaded.trained_with == name
    message = Message(data={TEXT: TEXTS[0]})
    loaded.process([message])
    np.testing.assert_allclose(message.get_dense_features(TEXT, [])[1].features,
                               data.training_examples[0].get_dense_features(TEXT, [])[1].features, atol=1e-6)

    # A model whose vectors came from another variant must not load.
    other = Resource("other")
    with storage.write_to(other) as directory:
        (directory / META_FILE).write_text(json.dumps({"encoder": name + "@other"}), encoding="utf-8")
    with pytest.raises(EncoderMismatch):
        EncoderFeaturizer.load(config, storage, other, context)


def test_same_process_shares_one_encoder(encoder_model_path: Path, storage: LocalModelStorage) -> None:
    first = _component(storage, Resource("a"))
    second = _component(storage, Resource("b"))
    assert first.vectors().encoder is second.vectors().encoder


def test_cache_returns_the_encoders_vectors_and_stays_bounded() -> None:
    class Counting:
        dim = 3

        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def encode(self, texts: list[str]) -> np.ndarray:
            self.calls.append(list(texts))
            assert len(texts) == 1  # never padded batches (see bot.nlu.vectors)
            return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)

    encoder = Counting()
    cached = vectors.CachedVectors(encoder, cache_size=2)  # type: ignore[arg-type]
    out = cached.encode(["好的", "不用了", "好的"])
    assert encoder.calls == [["好的"], ["不用了"]]  # duplicates encoded once
    np.testing.assert_array_equal(out[:, 0], [2, 3, 2])
    cached.encode([" 好的 "])  # the same text after whitespace cleaning: a hit
    assert len(encoder.calls) == 2
    cached.encode(["谢谢"])  # evicts the least recently used ("不用了")
    cached.encode(["不用了"])
    assert encoder.calls[-1] == ["不用了"] and len(cached._cache) == 2


def test_invalid_config_is_rejected(storage: LocalModelStorage) -> None:
    from rasa.shared.exceptions import InvalidConfigException

    with pytest.raises(InvalidConfigException):
        _component(storage, Resource("bad"), max_seq_length=0)


def test_rasa_fingerprint_follows_the_encoder(encoder_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rasa restores cached component outputs by fingerprint: another encoder variant must not hit."""
    from bot.config import settings

    config = EncoderFeaturizer.get_default_config()
    before = EncoderFeaturizer.fingerprint_addon(config)
    assert before == EncoderFeaturizer.fingerprint_addon(config)
    monkeypatch.setenv("SHANGLIANG_ENCODER_RUNTIME", "torch")
    settings.cache_clear()
    try:
        assert EncoderFeaturizer.fingerprint_addon(config) != before
    finally:
        monkeypatch.delenv("SHANGLIANG_ENCODER_RUNTIME")
        settings.cache_clear()

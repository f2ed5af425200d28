"""Topics: taxonomy, the classifier (lexical + embedding), persistence, the eval and train commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main as cli
from bot.topics import service
from bot.topics.classifier import TopicClassifier, training_hash
from bot.topics.data import load_examples
from bot.topics.evaluate import Dataset, cross_validate, metrics
from bot.topics.taxonomy import TaxonomyError, load_taxonomy

REQUIRED_NAMES = ["城乡建设", "物业与住房", "交通出行", "教育", "医疗卫生", "生态环境", "劳动就业", "社会保障",
                  "商贸与市场监管", "农业农村", "文化旅游", "公共安全", "政务服务", "其他"]
CONTEST_LABELS = ["城乡建设", "劳动和社会保障", "教育文体", "卫生计生", "交通运输", "商贸旅游", "环境保护"]


def test_taxonomy_covers_required_topics_and_committees() -> None:
    taxonomy = load_taxonomy()
    assert sorted(t.name for t in taxonomy.topics.values()) == sorted(REQUIRED_NAMES)
    for topic in taxonomy.topics.values():
        assert topic.committee in taxonomy.committees and topic.description
    assert "提案委员会" in taxonomy.committees.values()
    for label in CONTEST_LABELS:  # the contest's labels map onto product topics
        assert taxonomy.map_label(label) in taxonomy.topics
    assert taxonomy.map_label("交通出行") == "transport"  # Chinese names map too
    assert taxonomy.map_label("没有这个类") is None


def test_taxonomy_rejects_unknown_committee(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.yml"
    path.write_text("committees: [{id: a, name: 甲}]\ntopics:\n  - {id: other, name: 其他, committee: b}\n",
                    encoding="utf-8")
    with pytest.raises(TaxonomyError, match="unknown committee 'b'"):
        load_taxonomy(path)


def test_every_topic_has_enough_examples() -> None:
    taxonomy = load_taxonomy()
    examples = load_examples(taxonomy)
    counts = {tid: sum(1 for e in examples if e.label == tid) for tid in taxonomy.topics}
    assert min(counts.values()) >= 15, counts


def _synthetic_vectors(labels: list[str], dim: int = 16, seed: int = 0) -> np.ndarray:
    """Embedding stand-ins: one noisy direction per label, L2-normalised like the real encoder's."""
    rng = np.random.default_rng(seed)
    centres = {label: rng.normal(size=dim) for label in sorted(set(labels))}
    vectors = np.stack([centres[label] + rng.normal(scale=0.8, size=dim) for label in labels])
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_classifier_ranks_calibrated_probabilities_and_roundtrips(tmp_path: Path) -> None:
    taxonomy = load_taxonomy()
    examples = load_examples(taxonomy)
    texts, labels = [e.text for e in examples], [e.label for e in examples]
    vectors = _synthetic_vectors(labels)
    model = TopicClassifier().fit(texts, labels, vectors)
    assert model.uses_embeddings and sorted(model.classes_) == sorted(taxonomy.topics)
    queries = ["小区物业乱收停车费，业主委员会也不管", "公交车太少了，早上等车等半小时"]
    ranked = model.predict(queries, _synthetic_vectors(["housing_property", "transport"], seed=1))
    for row in ranked:
        probs = [p for _, p in row]
        assert len(row) == len(taxonomy.topics)
        assert probs == sorted(probs, reverse=True)
        assert abs(sum(probs) - 1.0) < 1e-6
    path = tmp_path / "model.pkl"
    model.save(path)
    again = TopicClassifier.load(path).predict(queries)
    assert again == model.predict(queries)


def test_training_needs_two_labels() -> None:
    with pytest.raises(ValueError, match="two distinct labels"):
        TopicClassifier().fit(["a", "b"], ["x", "x"])


def test_self_training_uses_unlabelled_texts() -> None:
    texts = ["公交车太少", "地铁太挤", "学校收费高", "老师补课", "公交站没雨棚", "学位不够"]
    labels = ["交通", "交通", "教育", "教育", "交通", "教育"]
    unlabeled = ["公交线路太绕", "学校食堂差", "地铁站太远", "老师态度差"] * 3
    model = TopicClassifier().fit(texts, labels, unlabeled_texts=unlabeled)
    assert set(model.classes_) == {"交通", "教育"}
    assert model._char is not None and "食堂" in "".join(model._char.vocabulary_)  # vocabulary saw them


def test_training_hash_changes_with_data() -> None:
    assert training_hash(["a"], ["x"]) == training_hash(["a"], ["x"])
    assert training_hash(["a"], ["x"]) != training_hash(["a"], ["y"])


def test_metrics_and_cross_validation_on_examples() -> None:
    taxonomy = load_taxonomy()
    examples = load_examples(taxonomy)
    data = Dataset([e.text for e in examples], [e.label for e in examples])
    result = cross_validate(data, folds=3)
    assert result["n"] == len(examples) and len(result["fold_macro_f1"]) == 3
    assert sum(map(sum, result["confusion"])) == len(examples)
    assert set(result["per_class_f1"]) == set(taxonomy.topics)
    perfect = metrics(["a", "b"], ["a", "b"], ["a", "b"])
    assert perfect["macro_f1"] == 1.0 and perfect["confusion"] == [[1, 0], [0, 1]]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_eval_topics_command(var_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("bot.topics.embeddings.embed_texts", lambda texts, cache=True: None)
    taxonomy = load_taxonomy()
    rows = [{"id": str(i), "text": e.text, "label": taxonomy.topics[e.label].name}
            for i, e in enumerate(load_examples(taxonomy))]
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    _write_jsonl(train, rows[::2])
    _write_jsonl(test, rows[1::2])
    png = tmp_path / "cm.png"
    assert cli(["eval", "topics", "--train", str(train), "--test", str(test), "--png", str(png)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mode"] == "train_test" and result["n"] == len(rows[1::2])
    assert 0.0 <= result["macro_f1"] <= 1.0 and "物业与住房" in result["per_class_f1"]
    assert png.exists() and png.stat().st_size > 1000
    assert result["cjk_font"], "no CJK font: make install ships one (mplfonts) so the labels are not boxes"

    unlabeled = tmp_path / "unlabeled.jsonl"
    _write_jsonl(unlabeled, [{"id": "u1", "text": "楼下烧烤油烟太大"}, {"id": "u2", "text": "孩子上学太远"}])
    assert cli(["eval", "topics", "--train", str(train), "--cv", "3", "--map-labels",
                "--unlabeled", str(unlabeled), "--self-train", "--repeats", "2", "--png", str(png)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mode"] == "cv3" and result["self_training"] is True
    assert [r["seed"] for r in result["repeats"]] == [0, 1]
    assert result["macro_f1_mean"] == pytest.approx(sum(r["macro_f1"] for r in result["repeats"]) / 2, abs=1e-4)
    assert set(result["per_class_f1"]) <= set(taxonomy.topics)  # labels were mapped to topic ids


def test_train_topics_caches_by_data_hash_and_flags_low_confidence(var_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(service, "embed_concerns", lambda texts, cache=True: None)
    service.reset_classifier()
    try:
        assert cli(["train-topics", "--no-db", "--no-embeddings"]) == 0
        first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert first["cached"] is False and first["labels"] == 14
        assert cli(["train-topics", "--no-db", "--no-embeddings"]) == 0
        second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert second["cached"] is True and second["hash"] == first["hash"]
        assert list((var_dir / "models" / "topics").glob("topics-*.pkl"))

        result = service.classify("小区物业费太贵了，电梯还老坏")
        assert result.topic in load_taxonomy().topics
        assert result.needs_review == (result.confidence < service.review_below())
        monkeypatch.setenv("SHANGLIANG_CONFIG", str(_config_with_review_below(var_dir, 1.01)))
        from bot.config import settings

        settings.cache_clear()
        assert service.classify("小区物业费太贵了，电梯还老坏").needs_review is True
    finally:
        service.reset_classifier()


def test_cached_topic_model_is_found_without_encoding_and_follows_the_encoder_variant(
        var_dir: Path, monkeypatch) -> None:
    """The model is keyed by the encoder variant whose vectors it reads: a cached one is loaded without
    encoding the training set, and another variant (other vectors, maybe another width) retrains."""
    calls: list[int] = []

    def fake_embed(texts, cache=True):
        calls.append(len(texts))
        rng = np.random.default_rng(len(texts))
        return rng.normal(size=(len(texts), 8)).astype(np.float32)

    monkeypatch.setattr(service, "embed_concerns", fake_embed)
    monkeypatch.setattr(service, "configured_encoder_name", lambda: "fake@128")
    monkeypatch.setattr(service, "default_encoder_name", lambda: "fake@128")
    service.reset_classifier()
    try:
        first, cached = service.train_classifier()
        assert not cached and len(calls) == 1 and first.uses_embeddings
        again, cached = service.train_classifier()
        assert cached and len(calls) == 1  # loaded from disk, nothing encoded
        assert again.data_hash == first.data_hash
        monkeypatch.setattr(service, "configured_encoder_name", lambda: "fake@128+ort-int8")
        monkeypatch.setattr(service, "default_encoder_name", lambda: "fake@128+ort-int8")
        other, cached = service.train_classifier()
        assert not cached and len(calls) == 2 and other.data_hash != first.data_hash
    finally:
        service.reset_classifier()


def _config_with_review_below(var_dir: Path, value: float) -> Path:
    import yaml

    from bot.config import REPO_ROOT

    data = yaml.safe_load((REPO_ROOT / "intake.yml").read_text(encoding="utf-8"))
    data["topics"]["review_below"] = value
    path = var_dir / "intake.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_weak_labels_from_official_replies() -> None:
    from bot.topics.weak import departments_for, weak_labels

    labels = {"教育文体", "交通运输", "城乡建设"}
    departments = departments_for(labels)
    assert set(departments) == labels  # the message-board label set was chosen
    rows = [
        {"text": "孩子上学太远", "reply": "网友您好！经区教育局核实，该校学位已满……"},
        {"text": "公交太少", "title": "线路问题", "reply": "您好，市交通运输局回复如下……"},
        {"text": "两个部门都管", "reply": "经教育局与交通运输局共同研究……"},  # ambiguous: skipped
        {"text": "没有答复"},
    ]
    got = weak_labels(rows, labels)
    assert [(e.text, e.label) for e in got] == [("孩子上学太远", "教育文体"), ("线路问题。公交太少", "交通运输")]
    assert set(departments_for({"education", "transport"})) == {"education", "transport"}


def test_long_encodes_keep_input_order() -> None:
    """Large evaluation sets are encoded in length-sorted chunks (with a progress bar); rows must still
    line up with their texts."""
    from bot.topics.embeddings import _encode_with_progress

    class LengthEncoder:
        dim = 2

        def encode(self, texts: list[str]) -> np.ndarray:
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    texts = ["很" * n for n in [5, 1, 300, 2, 40] * 60]
    vectors = _encode_with_progress(LengthEncoder(), texts, chunk=16)
    assert vectors[:, 0].tolist() == [float(len(t)) for t in texts]

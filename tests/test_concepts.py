"""Concept-group features: headlines, term counting, category systems, and what they teach the classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bot.topics.classifier import TopicClassifier
from bot.topics.concepts import (
    ConceptFeaturizer,
    ConceptGroup,
    groups_from_category_system,
    headline,
    load_concepts,
)
from bot.topics.data import message_text
from bot.topics.taxonomy import load_taxonomy


def test_headline_is_the_title_or_first_sentence() -> None:
    assert headline(message_text("电梯坏了三个月。没人修。", "投诉某小区电梯长期停运")) == "投诉某小区电梯长期停运"
    assert headline("公交车太少了！早上等半小时") == "公交车太少了"
    assert headline("   ") == ""
    assert len(headline("很" * 500)) == 60


def test_headline_skips_greetings_so_polite_openers_are_not_shared() -> None:
    assert headline("尊敬的杨书记： 您好！我是怡海星城的业主，小区一直不通公交。") == "我是怡海星城的业主，小区一直不通公交"
    assert headline("领导好，我们小区电梯坏了三个月了！") == "我们小区电梯坏了三个月了"
    assert headline("你好，打扰了。路灯坏了") == "路灯坏了"
    assert headline("hello 在吗？楼上装修太吵了") == "楼上装修太吵了"
    assert headline("市长您好：学校门口的斑马线没了") == "学校门口的斑马线没了"
    # Words that only start like a greeting stay; a message that is nothing but a greeting keeps it.
    assert headline("局长办公室的电话打不通") == "局长办公室的电话打不通"
    assert headline("好好学习的孩子没有学位") == "好好学习的孩子没有学位"
    assert headline("您好！") == "您好！"


def test_featurizer_counts_longest_terms_and_votes_per_label() -> None:
    groups = [ConceptGroup("bus", "交通", ("公交", "公交车", "巴士")), ConceptGroup("noise", "环境", ("噪音", "扰民"))]
    feat = ConceptFeaturizer(groups)
    heads, whole = feat.counts(["公交车太挤。每天坐公交车上班，巴士也少"])
    assert whole[0, 0] == np.float32(np.log1p(3)) and whole[0, 1] == 0  # 公交车 counted once, not as 公交 too
    assert heads[0, 0] == np.float32(np.log1p(1))
    grouped, votes = feat.transform(["楼下噪音扰民", "没有相关的词"])
    assert feat.labels == ["交通", "环境"]
    assert votes[0, 1] > 0.99 and votes[0, 0] == 0
    assert np.allclose(grouped[1], 0) and np.allclose(votes[1], 0)  # nothing matched: zero rows, no NaN


def test_category_system_becomes_one_group_per_level2(tmp_path: Path) -> None:
    path = tmp_path / "cats.json"
    path.write_text(json.dumps({"商贸旅游": {"市场监管": ["传销", "物价监督", "其他"], "其他": ["其他"]},
                                "城乡建设": {"住房保障与房地产": ["物业服务", "住房公积金"]}}, ensure_ascii=False),
                    encoding="utf-8")
    groups = {g.id: g for g in groups_from_category_system(path)}
    assert set(groups) == {"商贸旅游/市场监管", "城乡建设/住房保障与房地产"}
    market = groups["商贸旅游/市场监管"]
    assert market.label == "商贸旅游" and {"传销", "物价监督", "物价"} <= set(market.terms)
    assert "其他" not in market.terms and "管理" not in groups["城乡建设/住房保障与房地产"].terms


def test_project_lexicon_is_valid() -> None:
    topics = set(load_taxonomy().topics)
    groups = load_concepts()
    assert len(groups) >= 100
    assert {g.label for g in groups} <= topics and {g.label for g in groups} == topics
    assert len({g.id for g in groups}) == len(groups)
    assert all(len(t) >= 2 for g in groups for t in g.terms)


def test_a_word_never_seen_in_training_is_classified_through_its_group() -> None:
    """地铁 and 传销 occur in no training text; their groups' other words do, so the model still knows them."""
    groups = [ConceptGroup("transit", "交通", ("公交", "地铁", "轻轨")),
              ConceptGroup("fraud", "市场", ("传销", "非法集资", "骗局"))]
    texts = ["公交站太远", "公交线路绕", "公交班次少", "等公交半小时", "这个骗局坑了好多老人", "非法集资还在发广告",
             "又有人搞骗局", "非法集资公司跑路"]
    labels = ["交通"] * 4 + ["市场"] * 4
    queries, want = ["传销窝点", "轻轨票价贵"], ["市场", "交通"]  # no character in common with training texts
    with_groups = TopicClassifier(concepts=groups).fit(texts, labels).predict(queries)
    without = TopicClassifier(concepts=[]).fit(texts, labels).predict(queries)
    assert [r[0][0] for r in with_groups] == want
    for a, b, label in zip(with_groups, without, want, strict=True):
        assert dict(a)[label] > dict(b)[label] + 0.1  # without the groups the words mean nothing

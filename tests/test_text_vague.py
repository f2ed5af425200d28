"""bot.text.vague: openers that only announce a concern; titles and summaries of the others."""

from __future__ import annotations

import pytest

from bot.storage.summary import derive_summary, derive_title
from bot.text.vague import is_vague, meaningful_length


@pytest.mark.parametrize("text", [
    "我要投诉",
    "我要投诉！",
    "你好，有个问题想反映一下",
    "您好 我想反映个情况",
    "求助！！",
    "求助求助",
    "我有个建议",
    "有个建议",
    "在吗？我想咨询一下",
    "领导好，我要举报",
    "麻烦帮帮忙，有点事想反映",
    "我想提个意见。",
    "",
    "   ",
])
def test_vague_openers(text: str) -> None:
    assert is_vague(text) is True


@pytest.mark.parametrize("text", [
    "我要投诉物业",
    "我要投诉小区门口的烧烤摊，天天晚上吵到半夜",
    "求助，家里停水两天了",
    "有个建议：公交站台加个雨棚",
    "路灯坏了",
    "幸福小区3号楼电梯坏了",
    "噪音扰民",
])
def test_openers_with_content_are_not_vague(text: str) -> None:
    assert is_vague(text) is False


def test_title_and_summary_rules() -> None:
    text = ("您好，我要反映一下。我们锦绣苑小区东门外的下水道已经堵了两个星期了，污水漫到人行道上，"
            "味道非常大，老人孩子出门都要绕路。物业说归市政管，市政说归物业管，一直没人处理。"
            "希望有关部门尽快来疏通，并且把责任划分清楚。")
    title = derive_title(text)
    assert title.startswith("我们锦绣苑小区东门外的下水道") and len(title) <= 30
    summary = derive_summary(text)
    assert len(summary) <= 120 and summary.startswith("我们锦绣苑小区") and summary.endswith("。")
    assert derive_title("路灯坏了") == "路灯坏了"
    long_clause = "这" * 50
    assert derive_title(long_clause) == "这" * 29 + "…"




def test_meaningful_length_ignores_punctuation_spaces_and_emoji() -> None:
    assert meaningful_length("路灯坏了！！！😡😡") == 4
    assert meaningful_length("  ，。  ") == 0
    assert is_vague("😡😡😡") is True
    assert is_vague("我要投诉我要投诉我要投诉" * 400) is True

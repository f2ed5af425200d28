"""bot.text.times and bot.text.scope: since when, how many affected."""

from __future__ import annotations

import pytest

from bot.text.scope import find_scope
from bot.text.times import find_since_when


@pytest.mark.parametrize("text,since", [
    ("路灯坏了三个月了", "三个月了"),
    ("上周开始就一直停水", "上周"),
    ("从2024年5月开始噪音不断", "从2024年5月开始"),
    ("去年冬天开始暖气就不热", "去年冬天开始"),
    ("这个问题两年多了还没解决", "两年多了"),
    ("半年了也没人管", "半年了"),
    ("施工从3月份开始一直到现在", "从3月份开始"),
    ("十几天了垃圾没人收", "十几天了"),
    ("前几天下雨积水很深", "前几天"),
])
def test_since_when(text: str, since: str) -> None:
    assert find_since_when(text) == since


def test_no_time_mentioned() -> None:
    assert find_since_when("小区门口的垃圾桶满了") is None


@pytest.mark.parametrize("text,scope", [
    ("全小区几百户都受影响", "全小区"),
    ("影响到几百户居民", "几百户居民"),
    ("整栋楼都没电", "整栋楼"),
    ("上千人每天从这里过", "上千人"),
    ("三十多户人家吃水困难", "三十多户人家"),
    ("周边居民苦不堪言", "周边居民"),
    ("好几个小区都停水了", "好几个小区"),
    ("家家户户都被吵得睡不着", "家家户户"),
])
def test_scope(text: str, scope: str) -> None:
    assert find_scope(text) == scope


def test_no_scope() -> None:
    assert find_scope("我家的水管漏了") is None


def test_how_often_is_not_since_when() -> None:
    assert find_since_when("物业一直拖着不修，每天晚上都很吵") is None
    assert find_since_when("这个问题多年没人管") == "多年"


def test_full_width_digits_and_voice_text() -> None:
    assert find_since_when("从２０２４年５月开始噪音不断") == "从2024年5月开始"
    assert find_since_when("这个事情已经两个多月了一直没人管") == "两个多月了"
    assert find_scope("我们整个小区都停水了") == "整个小区"

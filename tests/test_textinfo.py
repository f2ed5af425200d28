"""What the dialogue can reuse from a resident's first message: vagueness, place, time, scope, phone."""

from __future__ import annotations

import pytest

from bot.service.textinfo import (
    analyze,
    find_district,
    find_phone,
    find_place,
    find_scope,
    find_since_when,
    is_vague,
)
from bot.storage.summary import derive_summary, derive_title


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


@pytest.mark.parametrize("text,place", [
    ("朝阳区望京街道花家地社区的路灯坏了三个月了", "朝阳区望京街道花家地社区"),
    ("幸福小区3号楼2单元楼道灯不亮", "幸福小区3号楼2单元"),
    ("我住在阳光花园5栋，楼下烧烤店油烟太大", "阳光花园5栋"),
    ("A3区的垃圾没人清运", "A3区"),
    ("XX路XX号附近施工噪音扰民", "XX路XX号"),
    ("建设路与人民路交叉口红绿灯坏了", "建设路"),
    ("王家庄村口的桥断了", "王家庄"),
    ("锦绣苑东门外的下水道堵了", "锦绣苑"),
    ("江宁区秣陵街道翠屏社区门口积水", "江宁区秣陵街道翠屏社区"),
    ("城关镇李家村的自来水发黄", "城关镇李家村"),
    ("中山北路128号门前人行道被占", "中山北路128号"),
    ("某某小区12栋楼顶漏水", "某某小区12栋"),
])
def test_places(text: str, place: str) -> None:
    assert find_place(text) == place


@pytest.mark.parametrize("text,district", [
    ("朝阳区望京街道花家地社区的路灯坏了三个月了", "朝阳区"),
    ("我住在南京市雨花区幸福小区", "雨花区"),
    ("A3区的垃圾没人清运", "A3区"),
    ("Ａ３区人民路井盖丢了", "A3区"),  # full-width as typed on phones
    ("浦东新区张江镇的公交太少", "浦东新区"),
    ("北岭县城关镇李家村的自来水发黄", "北岭县"),
    ("东湖小区门口就是东湖区政府", "东湖区"),  # 东湖小区 is an estate, 东湖区 the district
    ("我老家雨花台区的路灯坏了", "雨花台区"),  # a lead-in word is not part of the name
])
def test_districts(text: str, district: str) -> None:
    assert find_district(text) == district


@pytest.mark.parametrize("text", [
    "幸福小区3号楼2单元楼道灯不亮", "东湖社区停车区没有灯", "全区的路灯都该换了", "景区门口摊贩太多",
    "影响市容", "县城里的路坑坑洼洼", "本区居民看病难",
])
def test_no_district(text: str) -> None:
    assert find_district(text) is None


@pytest.mark.parametrize("text", [
    "我家小区门口的路灯坏了",
    "城市道路建设有个建议：公交站台太少",
    "我家楼下的马路坑坑洼洼",
    "不知道该找谁",
    "路灯坏了好久",
    "这个城市的公园太少",
])
def test_no_specific_place(text: str) -> None:
    assert find_place(text) is None


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


@pytest.mark.parametrize("text,phone", [
    ("我的电话13800138000，请联系我", "13800138000"),
    ("手机 138-0013-8000", "13800138000"),
    ("+86 13912345678 白天都在", "13912345678"),
    ("座机0755-86001234", "0755-86001234"),
    ("办公室电话 010 62751234", "010-62751234"),
])
def test_phone(text: str, phone: str) -> None:
    assert find_phone(text) == phone


@pytest.mark.parametrize("text", [
    "订单号 2023051812345678",
    "3号楼1201室",
    "身份证11010519491231002X",
    "12345热线打了没用",
])
def test_not_a_phone(text: str) -> None:
    assert find_phone(text) is None


def test_analyze_combines_everything_and_phone_digits_are_not_a_place() -> None:
    result = analyze("你好，幸福小区3号楼电梯坏了三个月了，整栋楼都受影响，我电话１３８００１３８０００")
    assert result == {"vague": False, "place": "幸福小区3号楼", "since_when": "三个月了", "scope": "整栋楼",
                      "phone": "13800138000"}


def test_analyze_vague_with_only_a_phone() -> None:
    result = analyze("我要投诉，13800138000")
    assert result["vague"] is True and result["phone"] == "13800138000"


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


def test_walking_is_not_a_road_name() -> None:
    from bot.service.textinfo import find_place

    assert find_place("小区门口的路灯坏了大半年，晚上走路都不敢走") is None
    assert find_place("幸福路修路三个月了，天天绕路") == "幸福路"


def test_how_often_is_not_since_when() -> None:
    from bot.service.textinfo import find_since_when

    assert find_since_when("物业一直拖着不修，每天晚上都很吵") is None
    assert find_since_when("这个问题多年没人管") == "多年"

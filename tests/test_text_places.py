"""bot.text.places: places kept whole, their parts, districts, comparing two places."""

from __future__ import annotations

import pytest

from bot.text.places import find_district, find_place, place_conflict, place_names, place_parts, same_place


@pytest.mark.parametrize("text,place", [
    ("朝阳区望京街道花家地社区的路灯坏了三个月了", "朝阳区望京街道花家地社区"),
    ("幸福小区3号楼2单元楼道灯不亮", "幸福小区3号楼2单元"),
    ("我住在阳光花园5栋，楼下烧烤店油烟太大", "阳光花园5栋"),
    ("A3区的垃圾没人清运", "A3区"),
    ("XX路XX号附近施工噪音扰民", "XX路XX号"),
    ("建设路与人民路交叉口红绿灯坏了", "建设路与人民路交叉口"),
    ("王家庄村口的桥断了", "王家庄村口"),
    ("锦绣苑东门外的下水道堵了", "锦绣苑东门"),
    ("江宁区秣陵街道翠屏社区门口积水", "江宁区秣陵街道翠屏社区门口"),
    ("城关镇李家村的自来水发黄", "城关镇李家村"),
    ("中山北路128号门前人行道被占", "中山北路128号门前"),
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


def test_walking_is_not_a_road_name() -> None:
    assert find_place("小区门口的路灯坏了大半年，晚上走路都不敢走") is None
    assert find_place("幸福路修路三个月了，天天绕路") == "幸福路"




@pytest.mark.parametrize("text,place", [
    ("幸福路小学后门那条胡同又脏又乱，垃圾没人收", "幸福路小学后门那条胡同"),
    ("某某街道某某家园北门的垃圾站臭气熏天", "某某街道某某家园北门"),
    ("解放路与人民路交叉口的红绿灯坏了", "解放路与人民路交叉口"),
    ("解放路和中山路路口井盖丢了", "解放路和中山路路口"),
    ("喂你好我家在幸福小区的3号楼电梯老是坏", "幸福小区的3号楼"),
    ("人民医院门口天天堵车", "人民医院门口"),
    ("东澜湾小区１２号楼漏水", "东澜湾小区12号楼"),  # full-width digits
])
def test_places_are_kept_whole(text: str, place: str) -> None:
    assert find_place(text) == place


def test_parts_of_a_lane_behind_a_school() -> None:
    parts = place_parts("幸福路小学后门那条胡同")
    assert parts.text == "幸福路小学后门那条胡同"
    assert parts.roads == ["幸福路"] and parts.landmark == "幸福路小学" and parts.spot == "后门"


def test_parts_of_an_intersection_keep_both_roads() -> None:
    parts = place_parts("解放路与人民路交叉口")
    assert parts.roads == ["解放路", "人民路"] and parts.spot == "交叉口"


def test_parts_from_district_to_unit() -> None:
    parts = place_parts("朝阳区望京街道花家地社区")
    assert (parts.district, parts.street, parts.community) == ("朝阳区", "望京街道", "花家地社区")
    parts = place_parts("幸福小区3号楼2单元")
    assert (parts.community, parts.building, parts.unit) == ("幸福小区", "3号楼", "2单元")
    parts = place_parts("中山北路128号")
    assert parts.roads == ["中山北路"] and parts.building == "128号"
    parts = place_parts("我们锦绣苑小区东门")
    assert parts.community == "锦绣苑小区" and parts.spot == "东门"


def test_parts_of_words_that_name_no_place_keep_the_words() -> None:
    parts = place_parts("我家楼下")
    assert parts.text == "我家楼下" and not parts.named()
    assert place_parts("").as_dict()["roads"] == []


@pytest.mark.parametrize("a,b,level", [
    ("幸福小区3号楼", "幸福小区5号楼", "building"),
    ("解放路与人民路交叉口", "解放路与中山路交叉口", "roads"),
    ("解放路", "中山路", "roads"),
    ("东澜湾小区", "阳光花园", "community"),
    ("幸福小区3号楼2单元", "幸福小区3号楼4单元", "unit"),
    ("朝阳区望京街道", "海淀区望京街道", "district"),
])
def test_place_conflict_at_the_finest_level_both_name(a: str, b: str, level: str) -> None:
    assert place_conflict(place_parts(a), place_parts(b)) == level


@pytest.mark.parametrize("a,b", [
    ("幸福小区3号楼", "幸福小区"),  # one is finer: no conflict
    ("解放路与人民路交叉口", "人民路与解放路路口"),  # the same intersection in other words
    ("解放路", "解放路与人民路交叉口"),
    ("东澜湾小区12号楼", "东澜湾社区12号楼"),  # 小区 and 社区 of one estate
    ("幸福小区", "人民医院门口"),  # nothing named on both sides
])
def test_no_place_conflict(a: str, b: str) -> None:
    assert place_conflict(place_parts(a), place_parts(b)) is None


def test_same_place() -> None:
    assert same_place("东澜湾小区", "东澜湾社区")
    assert same_place("岳磁社区", "岳词社区")
    assert not same_place("阳光小区", "阳光中学")


def test_place_names_start_at_word_boundaries() -> None:
    text = "要求拆除五一桥来建新桥，东澜湾社区12号楼"
    words = {0, 2, 4, 7, 8, 10, 11, 12, 17}  # 要求|拆除|五一桥|来|建|新桥|，|东澜湾社区|12号楼
    names = place_names(text, words)
    assert {"五一桥", "东澜湾社区", "12号楼"} <= names
    assert not any(name.startswith(("拆", "除")) for name in names)
    assert place_names("电梯坏了", {0, 2}, not_names={"电梯"}) == set()


def test_a_5000_character_paste_is_read_quickly() -> None:
    import time

    paste = "我们这里的问题反映了很多次一直没有人来处理" * 250 + "最后说一下地点是幸福小区3号楼"
    started = time.perf_counter()
    assert find_place(paste) == "幸福小区3号楼"
    assert time.perf_counter() - started < 1.0


def test_an_estate_inside_a_committee_is_the_community() -> None:
    assert place_parts("泉星社区东城名苑").community == "东城名苑"
    assert place_parts("龙湾国际社区两大几万人社区").community == "龙湾国际社区"  # a committee stays the first

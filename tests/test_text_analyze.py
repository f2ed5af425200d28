"""bot.text.analyze: the whole reading of an opener (/api/v1/analyze)."""

from __future__ import annotations

from bot.text.analyze import analyze


def test_analyze_combines_everything_and_phone_digits_are_not_a_place() -> None:
    result = analyze("你好，幸福小区3号楼电梯坏了三个月了，整栋楼都受影响，我电话１３８００１３８０００")
    parts = result.pop("place_parts")
    assert result == {"vague": False, "place": "幸福小区3号楼", "since_when": "三个月了", "scope": "整栋楼",
                      "phone": "13800138000"}
    assert parts["community"] == "幸福小区" and parts["building"] == "3号楼" and parts["roads"] == []


def test_analyze_vague_with_only_a_phone() -> None:
    result = analyze("我要投诉，13800138000")
    assert result["vague"] is True and result["phone"] == "13800138000"




def test_analyze_without_a_place_has_no_parts() -> None:
    assert analyze("我家楼下的马路坑坑洼洼")["place_parts"] is None


def test_analyze_voice_text_without_punctuation_keeps_the_whole_place() -> None:
    result = analyze("喂你好我想反映一下解放路和人民路交叉口那个红绿灯坏了好几天了车子乱开很危险")
    assert result["place"] == "解放路和人民路交叉口"
    assert result["place_parts"]["roads"] == ["解放路", "人民路"]
    assert result["since_when"] == "好几天了" and result["vague"] is False


def test_analyze_a_5000_character_paste() -> None:
    paste = "尊敬的领导：您好！" + "我们幸福路小学后门那条胡同的路灯坏了，晚上孩子放学看不见路，" * 170
    result = analyze(paste)
    assert len(paste) > 5000
    assert result["place"] == "幸福路小学后门那条胡同"
    assert result["vague"] is False

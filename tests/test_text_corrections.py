"""actions.parsing on top of bot.text: a place correction replaces the whole place, a lone part is applied."""

from __future__ import annotations

import pytest

from actions.parsing import corrected_place, merge_place


@pytest.mark.parametrize("text,entity,value", [
    ("地址说错了，是幸福路小学后门那条胡同", "幸福路", "幸福路小学后门那条胡同"),
    ("地点改成解放路与人民路交叉口，谢谢", "解放路", "解放路与人民路交叉口"),
    ("不是12栋，是21栋", None, "21栋"),
    ("地址应该是某某街道某某家园北门", "某某街道", "某某街道某某家园北门"),
    ("改一下地址", "阳光花园", "阳光花园"),  # nothing after a marker: the entity
])
def test_corrected_place_keeps_the_whole_place(text: str, entity: str | None, value: str) -> None:
    assert corrected_place(text, entity) == value


def test_a_whole_place_replaces_the_old_one_and_a_part_is_applied() -> None:
    assert merge_place("幸福小区3号楼", "幸福路小学后门那条胡同") == "幸福路小学后门那条胡同"
    assert merge_place("幸福小区3号楼", "5号楼") == "幸福小区5号楼"
    assert merge_place("幸福小区", "5号楼") == "幸福小区5号楼"
    assert merge_place(None, "5号楼") == "5号楼"

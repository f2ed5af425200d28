"""Slot-level helpers of the actions: answer markers, free-text answers, corrections.

Reading residents' words (yes/no, phones, case numbers, places, skip words) lives in `bot.text`.
"""

from __future__ import annotations

import re

from bot.text.normalize import normalize
from bot.text.places import find_place

# Stored in optional slots when the resident does not know or skips; sent to the API as null.
UNKNOWN = "不清楚"
# Stored in `phone` when the resident declines to leave a number.
NO_PHONE = "不留"

_PUNCT = " \t\r\n，。！？、；：,.!?;:~～…\"'“”‘’（）()【】[]"


def strip_filler(text: str) -> str:
    """Drop leading markers like 在/地址是 and surrounding punctuation from a free-text answer."""
    clean = normalize(text).strip(_PUNCT)
    clean = re.sub(r"^(就在|位于|地点是|地址是|地址|地点|在)", "", clean).strip(_PUNCT)
    return clean


# Slots a correction can name, checked in this order; the first keyword found wins.
_CORRECTION_SLOTS: list[tuple[str, re.Pattern[str]]] = [
    ("anonymous", re.compile(r"匿名|实名")),
    ("phone", re.compile(r"电话|手机|号码|联系方式")),
    ("since_when", re.compile(r"时间|什么时候|开始")),
    ("scope", re.compile(r"范围|影响|多少人")),
    ("place", re.compile(r"地址|地点|位置|号楼|\d+\s*[栋幢]|单元|小区|门牌|[东南西北]门|楼号")),
    ("description", re.compile(r"内容|描述|补充")),
]
_STRONG_MARKERS = re.compile(r"应该是|应该在|改成|改为|换成|更正为|更正成")
_WEAK_MARKERS = re.compile(r"是|[:：]|为|在")
# Parts of an address a resident typically corrects on their own ("是5号楼").
_PLACE_PARTS = [
    re.compile(r"\d+\s*号楼"),
    re.compile(r"\d+\s*[栋幢]"),
    re.compile(r"\d+\s*单元"),
    re.compile(r"\d+\s*室"),
    re.compile(r"[东南西北]门"),
]


def correction_target(text: str, phone_in_text: bool) -> str | None:
    clean = normalize(text)
    if phone_in_text:
        return "phone"
    for slot, pattern in _CORRECTION_SLOTS:
        if pattern.search(clean):
            return slot
    return None


def correction_value(text: str) -> str:
    """The new value in '地址说错了，是5号楼' / '不是12栋，是21栋' / '时间改成上个月'."""
    clean = normalize(text)
    # Drop the rejected alternative first ("不是12栋", "而不是南门").
    clean = re.sub(r"而?不是[^，,。；;是]*", "", clean)
    match = _STRONG_MARKERS.search(clean) or _WEAK_MARKERS.search(clean)
    if not match:
        return ""
    return strip_filler(clean[match.end():])


def merge_place(old: str | None, new: str) -> str:
    """Apply a partial address correction to the old address when the new value is one part of it."""
    if not old:
        return new
    for pattern in _PLACE_PARTS:
        if pattern.fullmatch(new):
            if pattern.search(old):
                return pattern.sub(new, old, count=1)
            return old + new
    return new


def corrected_place(text: str, entity: str | None = None) -> str:
    """The new place of a correction, whole ("地址改成幸福路小学后门那条胡同，谢谢" → 幸福路小学后门那条胡同).

    The resident's wording after the marker comes first: the NLU entity is often cut to the first road
    or street; it is used only when the wording gives no value. A lone part ("是5号楼") is returned as
    it is, for `merge_place` to apply onto the old place.
    """
    value = correction_value(text)
    if value:
        return find_place(value) or value
    return strip_filler(entity or "")

"""Pure text helpers for the actions: case numbers, phone numbers, yes/no answers, corrections."""

from __future__ import annotations

import re
import unicodedata

# Stored in optional slots when the resident does not know or skips; sent to the API as null.
UNKNOWN = "不清楚"
# Stored in `phone` when the resident declines to leave a number.
NO_PHONE = "不留"

_CASE_RE = re.compile(r"SL\s*(20\d{2})\s*[-—_]?\s*(\d{4,6})", re.IGNORECASE)
_MOBILE_RE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
_LANDLINE_RE = re.compile(r"(?<!\d)(0\d{2,3})-?(\d{7,8})(?!\d)")
_SKIP_RE = re.compile(r"不清楚|不知道|跳过|记不清|说不好|不确定|没注意|不好说|不记得|忘了|^略$|^无$|^没有$|^skip$",
                      re.IGNORECASE)
_NEGATIVE_RE = re.compile(r"不并|不合并|单独|分开|不留|不用|不要|不愿|不需要|不想|不行|不可以|不方便|算了|别|没必要|不必|拒绝|不了|莫得|甭|"
                          r"^不$|^否|^no\b|nope", re.IGNORECASE)
_POSITIVE_RE = re.compile(r"并入|合并|可以|好|行|愿意|留|是|嗯|对|要|没问题|中|同意|需要|当然|ok|yes|确认|确定", re.IGNORECASE)
_PUNCT = " \t\r\n，。！？、；：,.!?;:~～…\"'“”‘’（）()【】[]"


def normalize(text: str) -> str:
    """NFKC folds full-width letters, digits and dashes so residents' input matches the patterns."""
    return unicodedata.normalize("NFKC", text or "").strip()


def find_case_number(text: str) -> str | None:
    """The first case number in the text, canonical (SL2026-000123); tolerant of case, spaces, 全角."""
    match = _CASE_RE.search(normalize(text))
    if not match:
        return None
    return f"SL{match.group(1)}-{match.group(2).zfill(6)}"


def find_phone(text: str) -> str | None:
    """An 11-digit mobile number or a landline with area code (0571-88886666), normalised."""
    compact = re.sub(r"\s+", "", normalize(text))
    match = _MOBILE_RE.search(compact.replace("-", ""))
    if match:
        return match.group(1)
    match = _LANDLINE_RE.search(compact)
    if match:
        return f"{match.group(1)}-{match.group(2)}"
    return None


def is_skip(text: str) -> bool:
    return bool(_SKIP_RE.search(normalize(text)))


def yes_no(text: str, intent: str | None = None) -> bool | None:
    """Read a yes/no answer: explicit wording first, then the NLU intent; None when it is neither.

    Wording wins because short replies are where intent classification is weakest
    (3-fold cross-validation put affirm/deny F1 near 0.5).
    """
    clean = normalize(text)
    if _NEGATIVE_RE.search(clean):
        return False
    if _POSITIVE_RE.search(clean):
        return True
    if intent == "affirm":
        return True
    if intent == "deny":
        return False
    return None


def anonymity(text: str, intent: str | None = None) -> bool | None:
    """Whether the resident wants to stay anonymous; explicit wording beats the intent."""
    clean = normalize(text)
    if re.search(r"(不用|不要|不需要|不必|别|无需|不想|不)匿名|实名", clean):
        return False
    if "匿名" in clean:
        return True
    return yes_no(clean, intent)


def strip_filler(text: str) -> str:
    """Drop leading markers like 在/地址是 and surrounding punctuation from a free-text answer."""
    clean = normalize(text).strip(_PUNCT)
    clean = re.sub(r"^(就在|位于|地点是|地址是|地址|地点|在)", "", clean).strip(_PUNCT)
    return clean


def meaningful_length(text: str) -> int:
    return len(re.sub(r"[\s\W_]+", "", normalize(text)))


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

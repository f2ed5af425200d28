"""How many are affected, in the resident's words: "整栋楼", "三十多户人家", "周边居民"."""

from __future__ import annotations

import re

from bot.text.normalize import normalize

_CN_NUM = r"(?:[0-9]+|[一二三四五六七八九十两几半]+)"
_SCOPE = re.compile(
    "|".join([
        r"(?:全|整个|整)(?:个)?(?:小区|栋楼|幢楼|单元|栋|幢|条街|条路|个村|村|社区|片区|片|街道|镇)",
        rf"(?:好几|几|上|近|数|{_CN_NUM})(?:十|百|千|万)?多?(?:户|家|位|名)(?:居民|人家|业主|住户)?",
        r"(?:上|近|数|好几|几)(?:十|百|千|万)(?:多)?(?:人|个居民|名居民|位居民)",
        rf"{_CN_NUM}(?:十|百|千|万)多?(?:人|个居民|名居民|位居民)",
        r"(?:周边|附近|周围)(?:的)?(?:居民|住户|小区|商户|村民)",
        r"(?:好几|很多|不少|许多|大量|大部分|所有|全体)(?:的)?(?:户|家|栋楼|栋|个小区|居民|业主|住户|村民|家长|学生|老人)",
        r"家家户户|整片|附近一片|一大片|左邻右舍",
    ])
)


def find_scope(text: str | None) -> str | None:
    match = _SCOPE.search(normalize(text))
    return match.group(0) if match else None

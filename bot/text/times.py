"""Since when a problem has lasted, in the resident's words: "三个月了", "从2024年5月开始", "上周".

"一直/每天/经常" say how often, not since when: they are not read, so the resident is still asked.
"""

from __future__ import annotations

import re

from bot.text.normalize import normalize

_CN_NUM = r"(?:[0-9]+|[一二三四五六七八九十两几半]+)"
_SINCE = re.compile(
    "|".join([
        r"(?:从|自从|自)?(?:19|20)\d{2}年(?:\d{1,2}月(?:\d{1,2}[日号])?份?)?(?:初|底|末|中|以来|开始|起|到现在|至今)?",
        rf"(?:从|自从)?(?:去年|今年|前年|上半年|下半年)(?:{_CN_NUM}月份?|春天|夏天|秋天|冬天|春节|年初|年底|年中|"
        r"年末|开始|以来|起|底|初)?(?:以来|开始|起|到现在|就)?",
        r"(?:从|自从)?\d{1,2}月(?:\d{1,2}[日号])?份?(?:开始|以来|起|到现在)",
        rf"{_CN_NUM}(?:个)?多?(?:年|月|星期|礼拜|周|天|日|小时)多?(?:了|以来|之前|前|左右了?)",
        r"半(?:个)?(?:年|月)多?(?:了|以来|前)?",
        r"(?:好几|好多|很多|几)(?:个)?(?:年|月|星期|礼拜|周|天)(?:了|以来|前)",
        r"(?:上个?星期|上个?礼拜|上周|上个?月|前几天|前两天|这几天|前段时间|这段时间|最近一段时间|最近|近期|"
        r"昨天|前天|昨晚|今天|今早|春节前|春节后|国庆前|国庆后|入冬以来|入夏以来|开学以来)",
        r"(?:长期|常年|多年)",
    ])
)


def find_since_when(text: str | None) -> str | None:
    """The first time expression saying since when, as written (full-width digits folded)."""
    match = _SINCE.search(normalize(text))
    return match.group(0) if match else None

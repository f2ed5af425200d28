"""What a free-text opener already tells us: is it only "我要投诉"? where? since when? how many affected?
a phone number? Plain regular expressions, no segmentation: the dialogue only pre-fills what it reuses.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)

# Words that carry no content in an opener: greetings, "I want to report/complain", particles.
_FILLERS = sorted(
    """你好 您好 你们好 大家好 领导好 工作人员好 在吗 在不在 有人吗 请问 打扰 打扰一下 麻烦 麻烦你 麻烦您 帮忙 帮帮忙
    帮我 帮帮我 谢谢 谢谢你 谢谢您 感谢 那个 就是 这个 嗯 哦 喂 哈 啊 呀 吧 呢 吗 啦 哈喽 hello hi
    我 我们 本人 想 要 想要 我想 我要 需要 能 能不能 可以 可不可以 是否 请 一下 个 一个 件 一件 点 一点 些 一些
    有 有个 有一个 有件 有点 的 了 说 说说 讲 讲讲 问 问问 提 提个 提一个
    投诉 反映 反馈 举报 求助 咨询 建议 意见 诉求 问题 情况 事 事情 事儿 困难 烦恼 心声 留言 申诉 报告 报修
    急 紧急 着急 很急 非常 特别 一直 下 找 找你们 给 你们 您们 政协 委员 领导 相关部门 部门 处理 解决 反应""".split(),
    key=len,
    reverse=True,
)
_FILLER_RE = re.compile("|".join(re.escape(w) for w in _FILLERS), re.IGNORECASE)

# ---- places -----------------------------------------------------------------------------------
# Characters that end a place name on the left: function words, pronouns, verbs of location.
_STOP = "的在是了我你他她它们这那个和与及到从把被给对向往都也还就很太又说住啊呢吧吗哪每些有没不该"
_NAME = rf"[^\s\W{_STOP}]"
_MASK = r"[A-Za-z0-9＊*×X某]"
_NUM = r"[0-9一二三四五六七八九十百零〇两]"
_SUFFIX_AREA = (r"(?:特别行政区|自治区|自治州|自治县|开发区|高新区|新区|街道办|街道|社区|小区|新村|家园|花园|"
                r"公寓|大院|苑|省|市(?!场|民|政|里)|区|县|镇|乡|村(?!民|委|里)|屯|庄|广场|大厦)")
# 路 after a verb is walking/driving, not a road name: 晚上走路, 绕路, 问路, 堵路.
_SUFFIX_ROAD = r"(?:大道|大街|胡同|(?<![走跑让带绕赶问指抄拦挡修堵])路(?!灯|面|况|过|费|人|口子)|街(?!坊|头|边)|巷|弄)"
_COMPONENT = re.compile(
    rf"(?:{_NAME}{{2,10}}?|{_MASK}{{1,6}}){_SUFFIX_AREA}"
    rf"|(?:{_NAME}{{2,10}}?|{_MASK}{{1,6}}){_SUFFIX_ROAD}(?:{_NUM}{{1,5}}号(?:院)?)?"
    rf"|(?:{_NUM}{{1,4}}|[A-Za-z]{{1,2}}{_NUM}{{0,3}})(?:号楼|号院|栋|幢|单元|号|层|楼(?!下|上|道|梯|房))"
)
# Left-hand words that are not part of a name even though they are not stop characters.
_LEADING = re.compile(r"^(?:楼下|楼上|附近|旁边|对面|门口|这边|那边|就在|位于|靠近|咱们|咱|隔壁|周边|整个|全|"
                      r"一直|现在|最近|今天|昨天|上周|反映|投诉|举报|建议|请问|关于|目前|出门|路过|经过|去往|去|到|老家|家里|家)+")
_GENERIC = {"小区", "社区", "街道", "马路", "道路", "公路", "大街", "老小区", "新小区", "城区", "市区", "郊区",
            "景区", "园区", "地区", "山区", "农村", "城市", "城里", "全市", "全区", "本市", "本区", "辖区",
            "片区", "校区", "厂区", "营业区", "居住区", "停车区", "商业区", "服务区", "住宅区"}


def find_place(text: str) -> str | None:
    """The longest run of adjacent place components, e.g. 朝阳区望京街道花家地社区 / 幸福小区3号楼2单元."""
    chains: list[tuple[int, int]] = []
    for match in _COMPONENT.finditer(text):
        start, end = match.span()
        piece = match.group(0)
        lead = _LEADING.match(piece)
        if lead and lead.end() < len(piece):
            start += lead.end()
            piece = piece[lead.end():]
        if piece in _GENERIC or len(piece) < 2 or piece.endswith(("道路", "马路")):
            continue
        if chains and start <= chains[-1][1] + 0:
            chains[-1] = (chains[-1][0], end)
        else:
            chains.append((start, end))
    best = None
    for start, end in chains:
        piece = text[start:end]
        if piece in _GENERIC:
            continue
        if best is None or len(piece) > len(best):
            best = piece
    return best


# Place components that end in 区/县 but name no district: housing estates, parks, zones of a site.
_NOT_DISTRICT = ("小区", "社区", "园区", "景区", "风景区", "校区", "厂区", "片区", "城区", "市区", "郊区", "山区",
                 "地区", "辖区", "街区", "矿区", "库区", "营区", "学区", "病区", "展区", "服务区", "商业区",
                 "住宅区", "居住区", "停车区", "生活区", "办公区", "宿舍区", "家属区", "别墅区", "保护区",
                 "自治区", "特别行政区")


def find_district(text: str) -> str | None:
    """The first district or county the text names (雨花区, 浦东新区, A3区, 北岭县), else None.
    Uses the place components of find_place, so 幸福小区 or 东湖社区 is never taken for a district."""
    for match in _COMPONENT.finditer(normalise(text)):
        piece = match.group(0)
        lead = _LEADING.match(piece)
        if lead and lead.end() < len(piece):
            piece = piece[lead.end():]
        if not piece.endswith(("区", "县")) or piece in _GENERIC or piece.endswith(_NOT_DISTRICT):
            continue
        return piece
    return None


# ---- since when -------------------------------------------------------------------------------
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
        # "一直/每天/经常" say how often, not since when: the resident is still asked.
        r"(?:长期|常年|多年)",
    ])
)


def find_since_when(text: str) -> str | None:
    match = _SINCE.search(text)
    return match.group(0) if match else None


# ---- scope --------------------------------------------------------------------------------------
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


def find_scope(text: str) -> str | None:
    match = _SCOPE.search(text)
    return match.group(0) if match else None


# ---- phone numbers -----------------------------------------------------------------------------
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?(1[3-9][0-9](?:[- ]?[0-9]{4}){2})(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9])(0[1-9][0-9]{1,2})[- ]?([2-9][0-9]{6,7})(?![0-9])")


def find_phone(text: str) -> str | None:
    """A mainland mobile (11 digits) or landline with area code, digits only ('0755-12345678' kept dashed)."""
    match = _MOBILE.search(text)
    if match:
        return re.sub(r"[- ]", "", match.group(1))
    match = _LANDLINE.search(text)
    if match:
        return f"{match.group(1)}-{match.group(2)}"
    return None


# ---- vague openers ------------------------------------------------------------------------------
def is_vague(text: str) -> bool:
    """True when the message only announces a concern ("我要投诉", "有个问题想反映") without saying what."""
    core = _PUNCT.sub("", text or "")
    if not core:
        return True
    previous = None
    while previous != core:
        previous = core
        core = _FILLER_RE.sub("", core)
    return len(core) < 2


def normalise(text: str) -> str:
    """Full-width digits/letters to half-width so the patterns see one form."""
    return unicodedata.normalize("NFKC", text or "")


def analyze(text: str) -> dict[str, Any]:
    """The /api/v1/analyze result: {"vague", "place", "since_when", "scope", "phone"}."""
    text = normalise(text)
    phone = find_phone(text)
    # Digits of a phone number must not read as a building number or a date.
    rest = text.replace(phone, " ") if phone and phone in text else _MOBILE.sub(" ", text)
    return {
        "vague": is_vague(rest),
        "place": find_place(rest),
        "since_when": find_since_when(rest),
        "scope": find_scope(rest),
        "phone": phone,
    }

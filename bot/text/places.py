"""Places as residents name them, kept whole, with their parts read beside them.

"幸福路小学后门那条胡同" stays whole (not cut to "幸福路"), an intersection "解放路与人民路交叉口" keeps
both roads, "某某街道某某家园北门" keeps the estate and the gate. Beside the words, `place_parts` reads
district, street (街道/镇/乡), community or estate, roads (a list: an intersection is two), building
(号楼/栋/幢/门牌号), unit, landmark (小学, 医院…) and spot (北门, 交叉口…): routing reads the district,
the duplicate re-check compares parts at the finest level two concerns both name (`place_conflict`).

Plain regular expressions over typed tokens, no segmentation: a place is a run of adjacent tokens
(two roads may be joined by 与/和/跟), of which at least one is a specific name.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.text.normalize import normalize

# Characters that end a name on the left: function words, pronouns, verbs of location.
_STOP = "的在是了我你他她它们这那个和与及到从把被给对向往去都也还就很太又说住啊呢吧吗哪每些有没不该"
_NAME = rf"[^\s\W{_STOP}]"
# A road's name never spans a district or town: "A3区人民路" is A3区 + 人民路.
_ROAD_NAME = rf"[^\s\W{_STOP}区县镇乡省]"
_MASK = r"[A-Za-z0-9＊*×X某]"
_NUM = r"[0-9一二三四五六七八九十百零〇两]"
_AREA_SUFFIX = (r"(?:特别行政区|自治区|自治州|自治县|开发区|高新区|工业园区|工业园|新区|街道办事处|街道办|街道|社区|小区|"
                r"新村|家园|花园|公寓|大院|山庄|新城|苑|省|市(?!场|民|政|里|容|面|区)|区|县|镇|乡|村(?!民|委|里|口)|屯|庄|"
                r"广场|大厦)")
# 路 after a verb is walking/driving, not a road name: 晚上走路, 绕路, 问路, 堵路.
_ROAD_SUFFIX = r"(?:大道|大街|胡同|(?<![走跑让带绕赶问指抄拦挡修堵])路(?!灯|面|况|过|费|人|口子|段)|街(?!坊|头|边|道)|巷|弄)"
_LANDMARK_SUFFIX = (r"(?:小学|中学|学校|幼儿园|大学|学院|医院|卫生院|卫生服务中心|卫生站|诊所|公园|农贸市场|菜市场|市场|超市|"
                    r"商场|火车站|高铁站|汽车站|地铁站|公交站|车站|加油站|体育馆|图书馆|派出所|银行|酒店|宾馆|大桥|立交桥|"
                    r"天桥|桥|隧道|码头|地铁口|停车场|菜场|广场)")
_SPOT = (r"(?:十字路口|丁字路口|交叉口|交汇处|路口|村口|巷口|桥头|桥下|[东南西北]侧|[东南西北]{1,2}角|"
         r"(?:[东南西北]|东南|东北|西南|西北|后|正|前|侧|大|小)门(?:口)?|门口|门前)")
# Every token holds one of these characters within its first 15 (its suffix, a join or a demonstrative):
# checking that first lets the engine skip most positions of a long text (the token patterns run ~2x faster).
_HAS_SUFFIX = (r"(?=[^，。！？；,.!?;\n]{0,14}?[路街巷弄道同区县镇乡村屯庄苑园寓院山城厦场号栋幢座楼元门口前下学校所站桥隧头"
               r"侧角处叉心市馆行店州省与和跟及、交那这])")
_TOKENS = re.compile(
    _HAS_SUFFIX + "(?:" + "|".join([
        rf"(?P<building>(?:{_NUM}{{1,4}}|[A-Za-z]{{1,2}}{_NUM}{{0,3}})(?:号楼|号院|栋|幢|座|号|楼(?!下|上|道|梯|房|顶)))",
        rf"(?P<unit>{_NUM}{{1,3}}单元)",
        rf"(?P<spot>{_SPOT})",
        r"(?P<tail>[那这](?:条|个|座|片|段)(?:胡同|小巷|巷子|巷|小路|马路|路|街|桥|路口))",
        rf"(?P<road>(?:{_ROAD_NAME}{{2,10}}?|{_MASK}{{1,6}}){_ROAD_SUFFIX}(?:(?:{_NUM}{{1,5}}|{_MASK}{{1,3}})号(?:院)?)?)",
        rf"(?P<area>(?:{_NAME}{{2,10}}?|{_MASK}{{1,6}}){_AREA_SUFFIX})",
        rf"(?P<landmark>{_NAME}{{0,8}}?{_LANDMARK_SUFFIX})",
        r"(?P<suffix>小区|社区|新村|家园|花园)",
        r"(?P<join>[与和跟及、]|交)",
    ]) + ")"
)
# Left-hand words that are not part of a name even though they are not stop characters.
_LEADING = re.compile(r"^(?:喂|你好|您好|好|那个|就是|我想|想|要|一下|说|讲|楼下|楼上|附近|旁边|对面|门口|这边|那边|就在|位于|靠近|咱们|咱|隔壁|周边|整个|全|"
                      r"一直|现在|最近|今天|昨天|上周|反映|投诉|举报|建议|请问|关于|目前|出门|路过|经过|去往|去|到|老家|家里|家)+")
_GENERIC = {"小区", "社区", "街道", "马路", "道路", "公路", "大街", "老小区", "新小区", "城区", "市区", "郊区",
            "景区", "园区", "地区", "山区", "农村", "城市", "城里", "全市", "全区", "本市", "本区", "辖区",
            "片区", "校区", "厂区", "营业区", "居住区", "停车区", "商业区", "服务区", "住宅区", "广场", "大厦"}
# Components ending in 区/县 that name no district: housing estates, parks, zones of a site.
_NOT_DISTRICT = ("小区", "社区", "园区", "景区", "风景区", "校区", "厂区", "片区", "城区", "市区", "郊区", "山区",
                 "地区", "辖区", "街区", "矿区", "库区", "营区", "学区", "病区", "展区", "服务区", "商业区",
                 "住宅区", "居住区", "居民区", "停车区", "生活区", "办公区", "宿舍区", "家属区", "别墅区", "保护区",
                 "自治区", "特别行政区", "开发区", "高新区")
_STREET_END = ("街道办事处", "办事处", "街道办", "街道", "镇", "乡")
# Zones named like areas are landmarks of a place, not an estate.
_ZONE_END = ("开发区", "高新区", "工业园区", "工业园")
_COMMITTEE_END = re.compile(r"(?:社区|(?<!新)村)$")
_CITY_END = ("省", "市", "自治州")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int


@dataclass
class PlaceParts:
    """The whole place in the resident's words (normalised) and its parts; None/empty when not named."""

    text: str = ""
    district: str | None = None
    street: str | None = None
    community: str | None = None
    roads: list[str] = field(default_factory=list)
    building: str | None = None
    unit: str | None = None
    landmark: str | None = None
    spot: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def named(self) -> bool:
        return any((self.district, self.street, self.community, self.roads, self.building, self.unit,
                    self.landmark))


def _strip_lead(token: Token) -> Token | None:
    """Drop lead-in words ("老家雨花台区" → "雨花台区"); None when nothing specific is left."""
    if token.kind not in ("road", "area", "landmark"):
        return token
    lead = _LEADING.match(token.text)
    if lead and lead.end() < len(token.text):
        token = Token(token.kind, token.text[lead.end():], token.start + lead.end(), token.end)
    if token.text in _GENERIC or token.text.endswith(("道路", "马路")):
        return None
    return token


def tokens(text: str) -> list[Token]:
    """The place tokens of `text` (already normalised), left to right."""
    found: list[Token] = []
    for match in _TOKENS.finditer(text):
        token = _strip_lead(Token(str(match.lastgroup), match.group(0), match.start(), match.end()))
        if token is not None:
            found.append(token)
    return found


def _specific(token: Token) -> bool:
    if token.kind in ("road", "area"):
        return len(token.text) >= 2
    if token.kind == "landmark":
        return len(re.sub(_LANDMARK_SUFFIX + "$", "", token.text)) >= 2
    return token.kind in ("building", "unit")


def _chains(found: list[Token], text: str) -> list[list[Token]]:
    """Runs of adjacent tokens. A join (与/和) only links two roads ("解放路与人民路"); a spot, a bare
    suffix or a tail ("那条胡同") only continues a run; "的" is allowed before a building or a gate."""
    chains: list[list[Token]] = []
    for token in found:
        current = chains[-1] if chains else None
        if current:
            last = current[-1]
            adjacent = token.start == last.end
            if not adjacent and token.kind in ("building", "unit", "spot") and last.kind != "join":
                adjacent = token.start == last.end + 1 and text[last.end] == "的"
            if adjacent and not (last.kind == "join" and token.kind != "road"):
                current.append(token)
                continue
        if token.kind in ("join", "spot", "suffix", "tail"):
            continue  # nothing to continue
        chains.append([token])
    result = []
    for chain in chains:
        while chain and chain[-1].kind == "join":
            chain.pop()
        if chain and any(_specific(t) for t in chain):
            result.append(chain)
    return result


def _trim(token: Token, boundaries: Collection[int]) -> Token:
    """Start a name at the last word boundary that leaves it a name of its own: in long texts the
    leftmost match swallows the words before it ("再次反映A5区" → A5区, "K7县拆除五一桥" → K7县 + 五一桥)."""
    if token.kind not in ("road", "area", "landmark"):
        return token
    starts = [b for b in range(token.start + 1, token.end - 2) if b in boundaries]
    if not starts:
        return token
    start = max(starts)
    return Token(token.kind, token.text[start - token.start:], start, token.end)


def _runs(text: str, boundaries: Collection[int] | None = None,
          found: list[Token] | None = None) -> list[tuple[str, list[Token]]]:
    clean = normalize(text)
    runs = []
    for chain in _chains(tokens(clean) if found is None else found, clean):
        if boundaries is not None:
            chain = [_trim(token, boundaries) for token in chain]
        runs.append((clean[chain[0].start:chain[-1].end], chain))
    return runs


def find_place(text: str | None, boundaries: Collection[int] | None = None) -> str | None:
    """The longest place the text names, whole: 朝阳区望京街道花家地社区 / 幸福路小学后门那条胡同 /
    解放路与人民路交叉口; None when there is no specific place ("小区门口", "我家楼下的马路").
    `boundaries`: word starts of the normalised text (a segmentation), to cut lead-in words off names."""
    best: str | None = None
    for words, _ in _runs(text or "", boundaries):
        if best is None or len(words) > len(best):
            best = words
    return best


def _parts_of(words: str, chain: list[Token]) -> PlaceParts:
    parts = PlaceParts(text=words)
    previous: Token | None = None
    for token in chain:
        value = token.text
        if token.kind == "area":
            if value.endswith(_STREET_END):
                parts.street = parts.street or value
            elif value.endswith(_ZONE_END):
                parts.landmark = parts.landmark or value
            elif value.endswith(("区", "县")) and not value.endswith(_NOT_DISTRICT):
                parts.district = parts.district or value
            elif value.endswith(_CITY_END):
                pass  # a city or province: coarser than anything compared here
            elif parts.community is None or (_COMMITTEE_END.search(parts.community)
                                             and not _COMMITTEE_END.search(value)):
                # The finest wins: an estate (东城名苑) inside a residents' committee (泉星社区).
                parts.community = value
        elif token.kind == "suffix" and previous is not None and previous.kind == "area":
            # 锦绣苑 + 小区: one estate.
            if parts.community == previous.text:
                parts.community = previous.text + value
        elif token.kind == "road":
            name = re.sub(rf"(?:{_NUM}{{1,5}}|{_MASK}{{1,3}})号(?:院)?$", "", value)
            if name not in parts.roads:
                parts.roads.append(name)
            if name != value:
                parts.building = parts.building or value[len(name):]
        elif token.kind == "tail" and not parts.roads:
            parts.roads.append(words[: token.start - chain[0].start] + value)  # "…后门那条胡同" is a lane
        elif token.kind == "landmark":
            if _specific(token):
                parts.landmark = parts.landmark or value
            elif previous is not None:
                parts.landmark = parts.landmark or previous.text + value  # 幸福路 + 小学
        elif token.kind == "building":
            parts.building = value
        elif token.kind == "unit":
            parts.unit = parts.unit or value
        elif token.kind == "spot":
            parts.spot = parts.spot or value
        previous = token
    return parts


def place_parts(place: str | None) -> PlaceParts:
    """The parts of a place (the resident's answer or `find_place`'s result); empty when none is named.
    The text is kept as given (normalised) even when its parts are only a piece of it."""
    clean = normalize(place)
    parts = longest_place_parts(clean)
    parts.text = clean
    return parts


def longest_place_parts(text: str | None, boundaries: Collection[int] | None = None) -> PlaceParts:
    """The parts of the longest place in a text (their `text` is that place's words); each name starts
    at a word boundary when `boundaries` (word starts of the normalised text) are given."""
    clean = normalize(text)
    found = tokens(clean)
    runs = _runs(clean, boundaries, found)
    if not runs:
        return PlaceParts()
    words, chain = max(runs, key=lambda run: len(run[0]))
    parts = _parts_of(words, chain)
    if parts.district is None:
        parts.district = _first_district(found)
    return parts


def find_district(text: str | None) -> str | None:
    """The first district or county the text names (雨花区, 浦东新区, A3区, 北岭县), else None;
    幸福小区 or 东湖社区 is never taken for a district."""
    return _first_district(tokens(normalize(text)))


def _first_district(found: list[Token]) -> str | None:
    for token in found:
        if token.kind == "area" and token.text.endswith(("区", "县")) and not token.text.endswith(_NOT_DISTRICT):
            return token.text
    return None


# ---- every place name of a long text (the duplicate re-check) --------------------------------------
# Order matters: names are read as "<specific name><suffix>" and the longest suffix wins.
PLACE_SUFFIXES = (
    "小区", "社区", "街道", "大道", "路", "街", "巷", "村", "组", "镇", "乡", "号楼", "栋", "单元",
    "花园", "公寓", "大厦", "广场", "家园", "新村", "新城", "苑", "湾", "庄园", "山庄",
    "小学", "中学", "学校", "大学", "学院", "幼儿园", "医院", "卫生院", "公园", "市场", "菜市场",
    "工业园", "园区", "开发区", "车站", "高铁站", "地铁站", "桥", "河", "湖", "水库",
)
_SUFFIX_FIND = re.compile("|".join(sorted(PLACE_SUFFIXES, key=len, reverse=True)))
# Characters that end a name when read leftwards (function words, verbs residents put before places).
NAME_BREAK = frozenset("的在是了和与及我你他她们住于到从对把被向为位个这那该本里家有没都也就还要请问附近旁边门口对面"
                       "，。、；：！？,.;:!? ")


def place_names(text: str, boundaries: Collection[int], not_names: Collection[str] = ()) -> set[str]:
    """Every name before a place suffix in a long text: the shortest stem (2-8 chars) that starts at a
    word boundary (the caller's segmentation, e.g. jieba's) and holds no function character
    ("拆除五一桥来建" -> 五一桥). `not_names` are words that are never a stem (facilities: 电梯, 路灯)."""
    found: set[str] = set()
    for m in _SUFFIX_FIND.finditer(text):
        end = m.start()
        for start in range(end - 2, max(-1, end - 9), -1):
            stem = text[start:end]
            if any(ch in NAME_BREAK for ch in stem) or stem in not_names:
                break
            if start in boundaries:
                found.add(stem + m.group(0))
                break
    return found


# ---- comparing two places ---------------------------------------------------------------------------
# Residents name the same estate after the housing estate (小区) or after its residents' committee
# (社区): 东澜湾小区 and 东澜湾社区 are one place, not a place conflict.
_SAME_SUFFIXES = {"社区": "小区"}


def _canonical(name: str) -> str:
    for suffix, canonical in _SAME_SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)] + canonical
    return name


def same_place(x: str, y: str) -> bool:
    """One name contains the other (东澜湾 / 东澜湾社区), the same estate as 小区 or 社区, or a
    one-character typo (岳磁社区 / 岳词社区)."""
    x, y = _canonical(normalize(x)), _canonical(normalize(y))
    if not x or not y:
        return False
    if x in y or y in x:
        return True
    return len(x) == len(y) >= 4 and x[-2:] == y[-2:] and sum(a != b for a, b in zip(x, y, strict=True)) == 1


def _differs(x: str | None, y: str | None) -> bool:
    return bool(x and y) and not same_place(str(x), str(y))


# Published data masks districts as A3区 / K7县: the code is the district, whatever words lead into it.
_MASKED_DISTRICT = re.compile(r"[A-Z]\d{0,2}[区县]")


def _district(name: str | None) -> str | None:
    if not name:
        return None
    masked = _MASKED_DISTRICT.findall(name)
    return masked[-1] if masked else name


_ROAD_END = re.compile(r"(?:大道|大街|胡同|路|街|巷|弄)$")
_LANDMARK_END = re.compile(_LANDMARK_SUFFIX + "$")


def _estate_kind(name: str) -> str:
    """"committee" for a residents' committee or village (社区, 村), "estate" for housing (小区, 苑…):
    two names of different kinds can both be right. Residents say 社区 for their 小区, so those two
    compare."""
    if name.endswith("社区") or (name.endswith("村") and not name.endswith("新村")):
        return "committee"
    return "estate"


def _comparable_estates(x: str, y: str) -> bool:
    return _estate_kind(x) == _estate_kind(y) or (x.endswith(("社区", "小区")) and y.endswith(("社区", "小区")))


def _same_landmark_kind(x: str, y: str) -> bool:
    """小学 and 小学 compare; a 小学 and a 医院 are two landmarks of one place, not a conflict."""
    ex, ey = _LANDMARK_END.search(x), _LANDMARK_END.search(y)
    return bool(ex and ey and ex.group(0) == ey.group(0))


def _road_key(name: str) -> str:
    """花卉路 and 花卉大道 are one road told two ways: compared without the road word."""
    return _ROAD_END.sub("", name) or name


def _roads_conflict(a: list[str], b: list[str]) -> bool:
    """Two roads named apart, or two intersections on one road: neither set holds the other."""
    if not a or not b:
        return False
    ka, kb = [_road_key(x) for x in a], [_road_key(y) for y in b]
    a_in_b = all(any(same_place(x, y) for y in kb) for x in ka)
    b_in_a = all(any(same_place(y, x) for x in ka) for y in kb)
    return not (a_in_b or b_in_a)


def place_conflict(a: PlaceParts, b: PlaceParts) -> str | None:
    """The finest level at which two places, both naming it, differ ("building": 3号楼 vs 5号楼;
    "roads": 解放路与人民路 vs 解放路与中山路); None when they agree wherever both say something."""
    conflict = None
    if _differs(_district(a.district), _district(b.district)):
        conflict = "district"
    if _differs(a.street, b.street):
        conflict = "street"
    if a.community and b.community and _comparable_estates(a.community, b.community) \
            and _differs(a.community, b.community):
        conflict = "community"
    if _roads_conflict(a.roads, b.roads):
        conflict = "roads"
    if a.landmark and b.landmark and _same_landmark_kind(a.landmark, b.landmark) \
            and _differs(a.landmark, b.landmark):
        conflict = "landmark"
    for level in ("building", "unit"):
        x, y = getattr(a, level), getattr(b, level)
        if x and y and _number_key(x) != _number_key(y):
            conflict = level
    return conflict


def _number_key(part: str) -> str:
    """3号楼, 3栋 and 3幢 are one building; 3号楼 and 13号楼 are not (containment would say they are)."""
    return re.sub(r"(?:号楼|号院|号|栋|幢|座|楼|单元)$", "", part)

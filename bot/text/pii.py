"""Detectors of personal data in residents' words: each returns spans on full-width-folded text.

Kinds: `phone` (mobiles and landlines), `id_card`, `bank_card`, `email`, `plate`, `name`, `room` (the
flat below the building: "5号楼301" keeps 5号楼, masks 301). The redaction module (`bot.text.redact`)
folds the text, runs these, and maps spans back onto the resident's own characters.

Mobile and landline detection uses the `phonenumbers` library (libphonenumber's metadata for CN: valid
prefixes and lengths, +86/0086, spaces and dashes); the other kinds are project rules because no
maintained library installs with the pinned set and knows them (README, "Personal data").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from bot.text.normalize import normalize


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    kind: str


KINDS = ("phone", "id_card", "bank_card", "email", "plate", "name", "room")

# ---- ID numbers and bank cards ------------------------------------------------------------------
_DATE8 = r"(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_SEP = r"[\s-]?"
ID_CARD = re.compile(
    rf"(?<![\dA-Za-z])(?:\d{{6}}{_SEP}{_DATE8}{_SEP}\d{{3}}[\dXx]"      # 18 digits (since 1999)
    r"|\d{8}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3})(?![\dA-Za-z])"  # 15 digits (older cards)
)
BANK_CARD = re.compile(r"(?<![\dA-Za-z])\d{4}(?:[\s-]?\d){12,15}(?![\dA-Za-z])")
# A 16-19 digit run is a card when the resident says so nearby, or when it is Luhn-valid with a
# UnionPay (62) prefix: order and meter numbers of that length are common and must stay.
_CARD_CUE = re.compile(r"(卡号|银行卡|工资卡|储蓄卡|信用卡|社保卡|账号|帐号|账户|帐户|卡)[:：是为\s]*$")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def find_id_cards(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), "id_card") for m in ID_CARD.finditer(text)]


def find_bank_cards(text: str) -> list[Span]:
    spans = []
    for m in BANK_CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        cued = bool(_CARD_CUE.search(text[max(0, m.start() - 8):m.start()]))
        if cued or (digits.startswith("62") and _luhn_ok(digits)):
            spans.append(Span(m.start(), m.end(), "bank_card"))
    return spans


# ---- phones --------------------------------------------------------------------------------------
# libphonenumber's matcher (the `phonenumbers` package) reads +86/0086, spaces, dashes, dots and brackets
# around the area code. POSSIBLE leniency (length fits a CN number) keeps old 7-digit landlines that
# strict validation rejects; the checks below drop what a resident would not call a phone number.
_LOCAL_CUE = re.compile(r"(电话|座机|固话|联系方式)[^\d，。,;；]{0,6}$")
_DATE_LIKE = re.compile(rf"^{_DATE8}$")  # "电话20231205打过" is a date, not a local number
_LOCAL = re.compile(r"(?<![\d-])[2-9]\d{2,3}[\s-]?\d{4}(?![\d-])")
_NOT_AFTER = "年月日号元路线期层楼栋幢单元米度岁万千百块公斤个户人次分"


def _parse_cn(digits: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(digits, "CN")
    except phonenumbers.NumberParseException:
        return None
    if number.country_code != 86 or not phonenumbers.is_possible_number(number):
        return None
    return number


def find_phones(text: str, taken: Iterable[Span] = ()) -> list[Span]:
    """Mobiles and landlines (with or without +86, spaces, dashes, brackets around the area code), and
    7-8 digit local numbers right after a word that says they are one ("座机87654321")."""
    taken = list(taken)
    spans: list[Span] = []
    for match in phonenumbers.PhoneNumberMatcher(text, "CN", leniency=phonenumbers.Leniency.POSSIBLE):
        span = Span(match.start, match.end, "phone")
        national = str(match.number.national_number)
        after = text[span.end] if span.end < len(text) else ""
        before = text[span.start - 1] if span.start else ""
        if match.number.country_code != 86 or _overlaps(span, taken) or before.isdigit() or after.isdigit():
            continue
        if after and after in _NOT_AFTER:  # "2580元", "502路", "13号楼" are not phones
            continue
        mobile = len(national) == 11 and national[0] == "1"
        landline = not mobile and (match.raw_string.lstrip("(+").startswith("0") or "86" in match.raw_string[:4])
        if mobile or landline:
            spans.append(span)
    for m in _LOCAL.finditer(text):
        span = Span(m.start(), m.end(), "phone")
        if _overlaps(span, spans + taken) or _DATE_LIKE.match(m.group(0)):
            continue
        if _LOCAL_CUE.search(text[max(0, m.start() - 10):m.start()]):
            spans.append(span)
    return sorted(spans)


def find_phone(text: str) -> str | None:
    """The first phone number in `text`, normalised for the dialogue's contact slot: a mobile as 11
    digits ("13612345678"), a landline as area code and number ("0571-88886666"), a local number as its
    digits; None when there is none (ID and card numbers are not phones)."""
    folded = normalize(text)
    taken = find_id_cards(folded)
    taken += [s for s in find_bank_cards(folded) if not _overlaps(s, taken)]
    for span in find_phones(folded, taken):
        digits = re.sub(r"[^\d+]", "", folded[span.start:span.end])
        number = _parse_cn(digits)
        if number is None or not re.match(r"(\+|00)?86|0|1", digits):
            return re.sub(r"\D", "", digits)  # a local number without area code
        national = str(number.national_number)
        if len(national) == 11 and national[0] == "1":
            return national
        area = 2 if national[0] in "12" else 3  # 010, 020-029 are two-digit codes; the rest three
        return f"0{national[:area]}-{national[area:]}"
    return None


# ---- e-mail and plates ---------------------------------------------------------------------------
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领"
# Ordinary plates: province + letter + 5 of letters/digits; 新能源: 6, with D/F first or last.
PLATE = re.compile(
    rf"[{_PROVINCES}][A-HJ-NP-Za-hj-np-z][·•.\s-]?"
    r"(?:[DFdf][A-HJ-NP-Za-hj-np-z0-9]\d{4}|\d{5}[DFdf]|(?=[A-HJ-NP-Za-hj-np-z0-9]{0,4}\d)[A-HJ-NP-Za-hj-np-z0-9]{5})"
    r"(?![A-Za-z0-9])"
)


def find_emails(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]


def find_plates(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), "plate") for m in PLATE.finditer(text)]


# ---- names ---------------------------------------------------------------------------------------
# Common single-character surnames and the compound ones: a name is only recognised after a cue and a
# surname, which keeps false positives ("我是业主", "我是外地人") low.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔"
    "向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌"
    "毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦"
    "麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩"
    "明佘池查麻苑迟邝"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "司徒", "东方", "皇甫", "慕容", "令狐", "夏侯", "尉迟",
                     "长孙", "宇文", "公孙", "端木", "南宫", "独孤", "轩辕", "西门", "澹台", "呼延")
TITLES = ("师傅|阿姨|大爷|大妈|大姐|大哥|老师|先生|女士|小姐|经理|主任|书记|老板|医生|护士|同学|奶奶|爷爷|叔叔|"
          "婶婶|老人|老太|老头|伯伯|阿婆|阿公")
_SURNAME = rf"(?:{'|'.join(COMPOUND_SURNAMES)}|[{SURNAMES}])"
_NAME_END = r"(?=[，,。.!！?？;；、:：\s(（)）]|$|的|在|住|家|今年|电话|手机|联系|是|，|反映|想|身份证|邮箱|车牌)"
# Place words a "name" must not end with: "我是李家村的" is a village, "我是王府井的" a street.
_PLACE_END = re.compile(r"[村镇乡街路区县市省湾港庄寨屯山河湖桥园苑巷弄坊里井店场站厂]$")
# Strong cues introduce a name and nothing else; after weak ones ("我是", "本人") a word the dictionary
# knows as something other than a person ("我是商户", "我是高龄老人") is not a name.
_STRONG_CUE = r"(?:我叫|我的名字是|我名字叫|名字叫|联系人[:：]?\s*|姓名[:：]?\s*|名叫)"
_WEAK_CUE = r"(?:我是|本人是?)"
SELF_NAME = re.compile(rf"{_STRONG_CUE}(?P<name>{_SURNAME}[\u4e00-\u9fff]{{1,2}}){_NAME_END}")
WEAK_NAME = re.compile(rf"{_WEAK_CUE}(?P<name>{_SURNAME}[\u4e00-\u9fff]{{1,2}}){_NAME_END}")
# "杜鹃（联系人）": the cue after the name.
NAME_BEFORE_CUE = re.compile(rf"(?<![\u4e00-\u9fff])(?P<name>{_SURNAME}[\u4e00-\u9fff]{{1,2}})(?=[（(]?联系人)")
# "我是5号楼301的李建华", "我是住在阳光小区7栋402的老张": a name at the end of a self-introduction.
INTRO_NAME = re.compile(rf"我是[^，,。！？；\n]{{1,24}}?的(?:老|小)?(?P<name>{_SURNAME}[\u4e00-\u9fff]{{0,2}}){_NAME_END}")
SURNAME_ONLY = re.compile(rf"(?:我姓|本人姓|免贵姓)(?P<name>{_SURNAME})")
TITLED = re.compile(rf"(?P<name>{_SURNAME})(?:{TITLES})")


_TITLE_SET = frozenset(TITLES.split("|"))


def _not_a_given_name(candidate: str) -> bool:
    """"李某" is already masked, "张老师" is a title (TITLED masks the surname), "陈家" a family."""
    surname = next((c for c in COMPOUND_SURNAMES if candidate.startswith(c)), candidate[:1])
    given = candidate[len(surname):]
    return "某" in given or given in _TITLE_SET or given in ("家", "氏", "总", "哥", "姐", "叔", "姨", "伯")


@lru_cache(maxsize=1)
def _word_tags() -> dict[str, str]:
    # jieba's dictionary with part-of-speech tags; loaded (about 3 s) only when a weak cue needs it.
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return jieba.posseg.dt.word_tag_tab


def _is_common_word(candidate: str) -> bool:
    if len(candidate) < 2:  # a surname alone after 老/小 ("老张") is a nickname; every character is in the dictionary
        return False
    tag = _word_tags().get(candidate)
    return tag is not None and not tag.startswith("nr")


def _name_spans(pattern: re.Pattern[str], text: str, check_words: bool = False) -> Iterable[Span]:
    for m in pattern.finditer(text):
        name = m.group("name")
        if _not_a_given_name(name) or _PLACE_END.search(name) or (check_words and _is_common_word(name)):
            continue
        yield Span(m.start("name"), m.end("name"), "name")


def find_names(text: str, known_names: Iterable[str] = ()) -> list[Span]:
    spans = []
    for name in {n.strip() for n in known_names if n and len(n.strip()) >= 2}:
        spans += [Span(m.start(), m.end(), "name") for m in re.finditer(re.escape(name), text)]
    for pattern in (SELF_NAME, SURNAME_ONLY):
        spans += _name_spans(pattern, text)
    for pattern in (WEAK_NAME, INTRO_NAME, NAME_BEFORE_CUE):
        spans += _name_spans(pattern, text, check_words=True)
    for m in TITLED.finditer(text):
        # "王师傅" / "李阿姨": mask the surname; a title after a longer word ("物业经理") is not a name.
        before = text[m.start() - 1] if m.start() else ""
        if not re.match(r"[\u4e00-\u9fff]", before) or before in "说找问叫的和跟与是给让被老":
            spans.append(Span(m.start("name"), m.end("name"), "name"))
    return spans


# ---- flats below the building --------------------------------------------------------------------
_CN_NUM = "一二三四五六七八九十"
_BUILDING = rf"(?:\d{{1,3}}|[{_CN_NUM}]{{1,3}})(?:号楼|栋|幢|座|号?楼)"
_UNIT = rf"(?:(?:\d{{1,2}}|[{_CN_NUM}]{{1,2}})单元)"
# A room is a floor (1-2 digits) and a door (01-19..): "301", "1203"; "300户" is a count, not a door.
_ROOM_NO = r"\d{1,2}(?:0[1-9]|1\d|2\d)"
# Without 室/户 the digits must not run on into another number, a floor or a unit ("3号楼12层").
ROOM_AFTER_BUILDING = re.compile(rf"(?:{_BUILDING}{_UNIT}?|{_UNIT})"
                                 rf"(?P<room>{_ROOM_NO}(?:房间|号房|室|户|房|(?![\d单元栋幢座楼层米年月日元号])))")
ROOM_DASHED = re.compile(r"(?<![\d-])\d{1,3}-\d{1,2}-(?P<room>\d{3,4})(?![\d-])")
ROOM_SUFFIX = re.compile(rf"(?<![\d有共约余近超过多第])(?P<room>{_ROOM_NO}(?:房间|号房|室|户))")
ROOM_DOORPLATE = re.compile(r"门牌(?:号)?(?:码)?(?:是|为)?[:：\s]*(?P<room>\d{1,4}(?:号|室)?)")
# A second door in a list: "1单元302和303".
ROOM_LIST = re.compile(rf"^(?:和|、|与|跟|及|到|至|-|~)(?P<room>{_ROOM_NO}(?:室|户)?)(?!\d)")
# A door without a building, where the words say it is one: "我住301", "楼上是401", "隔壁502".
ROOM_SAID = re.compile(rf"(?:我住|我家住|家住|住在|我家是|楼上|楼下|隔壁|对门)(?:是|的|那家)?\s*"
                       rf"(?P<room>{_ROOM_NO}(?:房间|号房|室|户|房)?)(?![\d路号线元年月日米层栋幢楼公国省县])")


def find_rooms(text: str) -> list[Span]:
    spans = []
    for pattern in (ROOM_AFTER_BUILDING, ROOM_DASHED, ROOM_SUFFIX, ROOM_DOORPLATE, ROOM_SAID):
        spans += [Span(m.start("room"), m.end("room"), "room") for m in pattern.finditer(text)]
    for span in list(spans):
        m = ROOM_LIST.match(text[span.end:])
        if m:
            spans.append(Span(span.end + m.start("room"), span.end + m.end("room"), "room"))
    return spans


# ---- all of them ---------------------------------------------------------------------------------
def find_all(text: str, known_names: Iterable[str] = ()) -> list[Span]:
    """Every span of personal data in `text` (already folded), without overlaps: where two overlap, the
    one found first in the order ID, card, phone, e-mail, plate, room, name wins, then the longer."""
    ids = find_id_cards(text)
    cards = [s for s in find_bank_cards(text) if not _overlaps(s, ids)]
    found = ids + cards
    found += find_phones(text, found)
    for spans in (find_emails(text), find_plates(text), find_rooms(text), find_names(text, known_names)):
        found += spans
    chosen: list[Span] = []
    for span in found:  # earlier detectors first: an ID number is never re-read as a phone
        if not _overlaps(span, chosen):
            chosen.append(span)
    return sorted(set(chosen))


def _overlaps(span: Span, others: Iterable[Span]) -> bool:
    return any(o.start < span.end and span.start < o.end for o in others)

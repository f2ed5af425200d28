"""Personal-data redaction: the one path every surface uses (reports, digests, case views, replies, logs)."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Common Chinese surnames (single character): names are only recognised after one of these, which keeps
# false positives ("我叫外卖", "我是业主") low.
SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔"
    "向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌"
    "毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦"
    "麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩"
    "明佘池查麻苑迟邝"
)
TITLES = "师傅|阿姨|大爷|大妈|大姐|大哥|老师|先生|女士|小姐|经理|主任|书记|老板|医生|护士|同学|奶奶|爷爷|叔叔|婶婶|老人"

PHONE = re.compile(r"(?<!\d)(?:\+?86[-\s]?)?1[3-9]\d(?:[-\s]?\d{4}){2}(?!\d)")
LANDLINE = re.compile(r"(?<!\d)0\d{2,3}[-－]\d{7,8}(?!\d)")
ID_CARD = re.compile(r"(?<![\dA-Za-z])\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\dA-Za-z])")
BANK_CARD = re.compile(r"(?<!\d)\d{16,19}(?!\d)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# "我叫张三" / "我是李四" / "本人王五" / "联系人：赵六" — a surname plus one or two characters.
SELF_NAME = re.compile(
    rf"(我叫|我的名字是|我是|本人是?|联系人[:：]?|姓名[:：]?)([{''.join(sorted(SURNAMES))}][\u4e00-\u9fff]{{1,2}})"
    r"(?=[，,。.!！;；、\s]|$|的|在|住|家|今年|电话|手机)"
)
SURNAME_ONLY = re.compile(rf"(我姓|本人姓)([{''.join(sorted(SURNAMES))}])")
TITLED = re.compile(rf"([{''.join(sorted(SURNAMES))}])({TITLES})")


def redact(text: str, keep_contact: bool = False, known_names: Iterable[str] = ()) -> str:
    """Mask ID card, bank card, phone numbers, e-mail and personal names. With the resident's consent
    (`keep_contact`), phone numbers and names stay so a member can call back; ID numbers never do."""
    if not text:
        return text
    text = ID_CARD.sub("[身份证号已隐去]", text)
    text = BANK_CARD.sub("[卡号已隐去]", text)
    if keep_contact:
        return text
    text = PHONE.sub("[电话已隐去]", text)
    text = LANDLINE.sub("[电话已隐去]", text)
    text = EMAIL.sub("[邮箱已隐去]", text)
    for name in known_names:
        if name and len(name) >= 2:
            text = text.replace(name, name[0] + "某")
    text = SELF_NAME.sub(lambda m: m.group(1) + m.group(2)[0] + "某", text)
    text = SURNAME_ONLY.sub(lambda m: m.group(1) + "某", text)
    text = TITLED.sub(lambda m: "某" + m.group(2), text)
    return text


_CLAUSE_END = re.compile(r"[。！？!?；;\n]")


def subject_line(text: str, limit: int = 30) -> str:
    """A redacted one-line subject of a concern (its first sentence, shortened): what strangers, other
    residents and merge offers may see. Redaction runs on the whole text first, so a mask is never cut."""
    clean = " ".join(redact(text or "").split())
    first = _CLAUSE_END.split(clean, maxsplit=1)[0].strip() or clean
    return first if len(first) <= limit else first[: limit - 1] + "…"

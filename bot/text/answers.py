"""Short answers to the bot's questions: yes/no, the read-back (confirm/change/cancel), consent, anonymity.

Why wording first: short replies are where intent classification is weakest (3-fold CV put affirm/deny
F1 near 0.5), and a wrong "yes" costs the most: it merges a resident into someone else's case or files a
concern they were still thinking about. So negation and hedges are read before any positive word
("不是很想留" contains 想 and 留, "不太对" contains 对), idioms whose negation means yes ("没问题",
"没毛病", "不错") are read before the negation, and the NLU intent is only the last resort.
"""

from __future__ import annotations

import re
from enum import Enum

from bot.text.normalize import normalize


class Answer(str, Enum):
    YES = "yes"
    NO = "no"
    HESITANT = "hesitant"  # "让我想想", "再考虑一下": not yes, and not a refusal either
    UNKNOWN = "unknown"  # neither: ask again


class ReadBack(str, Enum):
    CONFIRM = "confirm"
    CHANGE = "change"
    CANCEL = "cancel"
    HESITATE = "hesitate"  # keep the draft, do not file it
    UNKNOWN = "unknown"  # re-ask the same read-back


# Politeness that contains a negation but answers nothing ("不好意思，可以").
_POLITE = re.compile(r"不好意思|不客气|不知道(?:行不行|可不可以)?呢?")
# Negated words that mean yes: read before the negation, so they never count as a "no".
_YES_IDIOMS = re.compile(
    r"(?:没|冇|木有|没得|没啥|没什么|没有|都没|无|么得)(?:啥|什么|任何)?(?:问题|毛病|意见|异议)"
    r"|没错|不错|错不了|没差|准没错|不是不(?:行|可以|同意|愿意)|不介意|无所谓不同意"
)
_HESITANT = re.compile(
    r"(?:让我|我|容我|我得|我要|我还得?|先)?再?(?:想想|想一想|想一下|考虑|琢磨|斟酌)"
    r"|等一?下|等等|稍等|等会|等一会|待会|晚点|晚些|回头再|过会|改天|"
    r"不(?:太|大|是很)?确定|不一定|说不好|不好说|没想好|还没定|拿不准|犹豫|纠结|再说吧|看情况|再看看|还在想"
)
_NEGATIVE = re.compile(
    r"不是|不对|不太|不大|不怎么|不同意|不用|不要|不行|不愿|不想|不需要|不必|不留|不给|不方便|不好|不成|不中|不得行|"
    r"不可以|不了|不合并|不并|不不|别|甭|莫得|没得|没必要|没有|没那|并没|算了|免了|拒绝|否|错了|错啦|有误|"
    r"不一样|不是同一|另一回事|分开|单独|各算各|冇|唔|没门|休想|"
    r"(?<![a-z])(?:no+|nope|nah|not|don'?t|n)(?![a-z])|🙅|❌|👎"
)
# Asking back ("为什么要留电话？", "是吗") is not an answer.
_QUESTION = re.compile(r"为什么|为啥|干嘛|干啥|什么意思|啥意思|怎么|如何|哪里|哪个|多久|[吗嘛][?？]?$|\?$|？$")
_POSITIVE = re.compile(
    r"是|对|好|可以|可|行|嗯|恩|愿意|同意|确认|确定|当然|没问题|要得|得嘞|妥|阔以|对头|系|要|留吧|留着|留下|"
    r"提交|交吧|交上去|发吧|发出去|报上去|就这样|就这么|一起|一块|合并|并入|并到|合到|正确|无误|"
    r"(?<![a-z])(?:ok|okay|okk|oj|yes|yep|yeah|yup|sure|confirm|y|en|hao|dui|keyi)(?![a-z])|"
    r"👌|👍|✅|🙆|🤝|💯|✔"
)
# One-character answers that are words of their own only when said alone ("中" vs "中学", "成" vs "成本").
_ALONE_YES = re.compile(r"^(?:(?:中|成|行|要|留|得|在)(?:啊|呀|嘞|咧|吧|的|滴|哈|啦|呢|哦)?)+$")


def _clean(text: str) -> str:
    """Lower-case, half-width, without the politeness that would read as a negation."""
    clean = normalize(text).lower()
    return _POLITE.sub(" ", clean)


def yes_no(text: str | None, intent: str | None = None) -> Answer:
    """Read a yes/no answer: hedges, then negations, then questions, then yes words, then the intent."""
    clean = _clean(text or "")
    # Idioms first: "没问题" must not be a "没有", "不错" not a "不".
    core = _YES_IDIOMS.sub(" 没问题 ", clean)
    if _HESITANT.search(core):
        return Answer.HESITANT
    if _NEGATIVE.search(core.replace("没问题", "")):
        return Answer.NO
    if _QUESTION.search(core.strip(" 。.!！~～")):
        return Answer.UNKNOWN
    if _POSITIVE.search(core) or _ALONE_YES.match(_compact(core)):
        return Answer.YES
    # WeChat residents answer with the first choice offered ("回复 1 确认"): a bare 1 is the yes.
    choice = _CHOICE.match(_compact(core))
    if choice and _CHOICES[choice.group(1)] is ReadBack.CONFIRM:
        return Answer.YES
    if intent == "affirm":
        return Answer.YES
    if intent in ("deny", "cancel"):
        return Answer.NO
    return Answer.UNKNOWN


def _compact(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", text)


# ---- the read-back: "回复 1 确认 / 2 修改 / 3 取消" ---------------------------------------------------
_CHOICE = re.compile(r"^(?:回复|选|选择|按|我选|就)?第?([123一二三])(?:号|个|项)?(?:确认|修改|取消|提交)?[。.!！~～]*$")
_CHOICES = {"1": ReadBack.CONFIRM, "一": ReadBack.CONFIRM, "2": ReadBack.CHANGE, "二": ReadBack.CHANGE,
            "3": ReadBack.CANCEL, "三": ReadBack.CANCEL}
# Holding back the submission is a hesitation, not a cancel: "先别提交", "先不发".
_HOLD = re.compile(r"先(?:别|不要?|等等?|暂时不)(?:提交|交|发|报)|暂时(?:别|不要?|先不)(?:提交|交|发|报)?|暂缓")
_CANCEL = re.compile(
    r"取消|撤销|撤回|撤掉|作罢|作废|放弃|退出|停止|中止|终止|^停+(?:吧|了)?$|算了|算球|算咯|没事了|"
    r"不(?:用|要|想|想要|打算|需要)?(?:提交|交|发|报|投诉|反映|反应|弄|办|说|填|写|整|搞|登记|继续|提)(?:了|啦|咯)|"
    r"不(?:用|要|想|需要)(?:提交|交上去|发出去|报上去)|不要了|不用了|不需要了|不(?:提交|交|发|报)(?:了|啦)?$|"
    r"别(?:提交|交|发|报)了?|删(?:掉|除|了)|唔(?:报|要|使)|不算了?"
)
_CANCEL_WORDS = re.compile(r"(?<![a-z])(?:cancel|exit|quit|stop)(?![a-z])")
_CHANGE = re.compile(
    r"修改|改一?下|要改|改成|改为|改改|改个|更正|错了|写错|说错|弄错|搞错|有误|不对|不准确|不是.+是|应该是|应该在|换成|"
    r"补充|加一?[句点条]|再加|还有一?[点个件]|漏了|少了"
)
# Naming a field without saying what is wrong with it is a change only when nothing confirms
# ("电话写错了" is a change, "内容都对，提交吧" a confirmation).
_FIELD = re.compile(r"地址|地点|位置|电话|号码|时间|匿名|内容|描述")
_CONFIRM = re.compile(
    r"确认|提交|交上去|交吧|发吧|发出去|发过去|报上去|报吧|递交|就这样|就这么|就这些|没问题|对的|都对|没错|无误|正确|"
    r"可以了|好了|行了|ok了"
)


def read_back(text: str | None, intent: str | None = None) -> ReadBack:
    """Read the answer to "信息对吗？回复 1 确认 / 2 修改 / 3 取消".

    Order matters: a hesitation keeps the draft ("让我再想想", "先别提交"), a cancel names giving up,
    a change names something wrong or missing; only then do confirmations and plain yes/no count.
    """
    clean = _clean(text or "")
    compact = _compact(clean)
    choice = _CHOICE.match(compact)
    if choice:
        return _CHOICES[choice.group(1)]
    if _HOLD.search(compact) or _HESITANT.search(_YES_IDIOMS.sub(" 没问题 ", clean)):
        return ReadBack.HESITATE
    if _CANCEL.search(compact) or _CANCEL_WORDS.search(clean):
        return ReadBack.CANCEL
    core = _YES_IDIOMS.sub("没问题", compact)
    if _CHANGE.search(core):
        return ReadBack.CHANGE
    if _CONFIRM.search(core):
        return ReadBack.CONFIRM
    answer = yes_no(clean, intent if intent in ("affirm", "deny") else None)
    if answer is Answer.YES:
        return ReadBack.CONFIRM
    if _FIELD.search(core):
        return ReadBack.CHANGE
    if answer is Answer.NO:
        return ReadBack.CHANGE  # "不" to "信息对吗": something is wrong; asking what keeps the draft
    if answer is Answer.HESITANT:
        return ReadBack.HESITATE
    if intent == "cancel":
        return ReadBack.CANCEL
    if intent == "correct_info":
        return ReadBack.CHANGE
    return ReadBack.UNKNOWN


# ---- consent to be called back, anonymity ----------------------------------------------------------
def consent(text: str | None, intent: str | None = None) -> Answer:
    """"可以留个电话吗？": yes/no, where "不留"/"不想留联系方式" is a no and "留吧" a yes."""
    return yes_no(text, intent)


_NOT_ANONYMOUS = re.compile(r"(?:不用|不要|不需要|不必|别|无需|不(?:是很|太|大|怎么)?想|不|没必要)匿名|实名|公开(?:也|就)?(?:可以|行|没事)|"
                            r"可以公开|留名|写我名字|署名")
_ANONYMOUS = re.compile(r"匿名|保密|不想?(?:让人|被人|别人)?知道|不(?:要|想)?(?:公开|留名|透露|暴露)|别(?:公开|透露|说是我)")


def anonymity(text: str | None, intent: str | None = None) -> Answer:
    """"需要匿名吗？": YES means the resident wants to stay anonymous.

    Explicit wording beats the yes/no reading: "不用匿名" is NO (not anonymous), "别透露我的名字" is YES.
    """
    clean = _clean(text or "")
    if _NOT_ANONYMOUS.search(clean):
        return Answer.NO
    if _ANONYMOUS.search(clean):
        return Answer.YES
    return yes_no(clean, intent)


# ---- "I don't know" / skip -------------------------------------------------------------------------
_SKIP = re.compile(r"不清楚|不知道|跳过|记不清|说不好|不确定|没注意|不好说|不记得|忘了|想不起|^略$|^无$|^没有$|^skip$|"
                   r"^pass$|^不详$|^未知$")


def is_skip(text: str | None) -> bool:
    """The resident does not know or skips an optional question ("不清楚", "跳过", "忘了")."""
    return bool(_SKIP.search(normalize(text).lower()))

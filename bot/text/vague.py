"""Does an opener only announce a concern ("我要投诉", "有个问题想反映") without saying what?"""

from __future__ import annotations

import re

from bot.text.normalize import normalize

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


def is_vague(text: str | None) -> bool:
    """True when nothing but fillers is left once greetings and "I want to report" are taken away."""
    core = _PUNCT.sub("", normalize(text))
    if not core:
        return True
    previous = None
    while previous != core:
        previous = core
        core = _FILLER_RE.sub("", core)
    return len(core) < 2


def meaningful_length(text: str | None) -> int:
    """Characters that are letters, digits or CJK (punctuation, spaces and emoji do not count)."""
    return len(_PUNCT.sub("", normalize(text)))

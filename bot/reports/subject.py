"""A report's subject: what is wrong and where, in one line, from the resident's redacted words.

Residents open with who they are ("我是住在…的老张", "你好，我想反映个问题"); a member needs the problem.
Clauses that only introduce the resident, greet, or give contact details are skipped.
"""

from __future__ import annotations

import re

SUBJECT_MAX = 30
PROBLEM_CUES = ("问题", "隐患", "没有", "没人", "不", "无法", "难", "差", "坏", "乱", "堵", "吵", "臭", "漏",
                "拖欠", "危险", "投诉", "影响", "严重", "缺", "停", "脏", "占", "噪音", "积水", "破损", "塌")
_CLAUSE = re.compile(r"[，,。！？!?；;\n]+")
_INTRO = re.compile(
    r"^(?:你好|您好|你们好|领导好|工作人员好|打扰|请问|在吗|谢谢|麻烦你们|"
    r"我是|我叫|我姓|本人|我的名字|我们是|我住|我家住|家住|住在|我在|联系|电话|手机|座机|邮箱|身份证|"
    r"我的(?:电话|手机|号码|邮箱)|号码|微信)"
)
# "我想反映一下我们小区的问题": announces a concern without saying it.
_ANNOUNCE = re.compile(r"(?:想|要)?(?:反映|投诉|举报|咨询|求助|说)(?:一下|个|一个|件)?.{0,8}(?:问题|情况|事情?)$")
_MASK = re.compile(r"\[[^\]]*已隐去\]")
# Administrative levels; "社区"/"小区"/"园区" end a place name rather than a level.
_PLACE_PART = re.compile(r"(?:省|市|(?<![社小园校景])区|县|街道|镇|乡)")


def short_place(place: str | None) -> str:
    """The most specific part of a place ("东湖区清河街道柳岸社区" → "柳岸社区")."""
    parts = [p for p in _PLACE_PART.split(place or "") if p.strip()]
    return parts[-1].strip() if parts else ""


def content_clauses(text: str) -> list[str]:
    out = []
    for clause in _CLAUSE.split(text or ""):
        clause = clause.strip(" ：:~～…")
        if len(clause) < 2 or _INTRO.match(clause) or _MASK.search(clause):
            continue
        if _ANNOUNCE.search(clause) and len(clause) <= 16:
            continue
        out.append(clause)
    return out


def report_subject(redacted_text: str, place: str | None = None, limit: int = SUBJECT_MAX) -> str:
    """"柳岸社区：3号楼电梯坏了三个月没人修" — the first clause that states a problem (else the first
    with content), prefixed with the place when the clause does not name it."""
    clauses = content_clauses(redacted_text)
    if not clauses:
        return "群众反映问题"
    index = next((i for i, c in enumerate(clauses) if any(cue in c for cue in PROBLEM_CUES)), 0)
    subject = clauses[index]
    if len(subject) < 8 and index + 1 < len(clauses):  # "电梯坏了" says little alone: add what follows
        subject = f"{subject}，{clauses[index + 1]}"
    where = short_place(place)
    if where and where not in subject:
        subject = f"{where}：{subject}"
    return subject if len(subject) <= limit else subject[: limit - 1] + "…"

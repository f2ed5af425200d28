"""Reports: PII redaction and the 社情民意信息 report shape."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from bot.reports.compose import build_report, sort_sentences
from bot.text.redact import redact
from bot.reports.render import render
from bot.topics.taxonomy import load_taxonomy


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("我叫张三，住在柳岸社区", "张三"),
        ("有事打我电话 138-1234-5678", "138-1234-5678"),
        ("我的手机13912345678", "13912345678"),
        ("座机0731-84567890", "84567890"),
        ("身份证号430102199001011234", "430102199001011234"),
        ("王师傅说明天再来修", "王师傅"),
        ("联系人：刘建国，电话15000000000", "刘建国"),
        ("我姓李，是三楼的住户", "我姓李"),
        ("邮箱 someone@example.com", "someone@example.com"),
    ],
)
def test_redact_masks_personal_data(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_redact_keeps_ordinary_words() -> None:
    text = "我是业主，小区电梯坏了三个月，物业一直不修"
    assert redact(text) == text


def test_consent_keeps_contact_but_never_id_numbers() -> None:
    text = "我叫张三，电话13812345678，身份证430102199001011234"
    kept = redact(text, keep_contact=True)
    assert "张三" in kept and "13812345678" in kept
    assert "430102199001011234" not in kept


def test_known_contact_name_is_masked_anywhere() -> None:
    assert "欧阳娜娜" not in redact("欧阳娜娜反映楼道灯不亮", known_names=["欧阳娜娜"])


def test_sentences_sorted_into_problems_and_demands() -> None:
    background, problems, demands = sort_sentences(
        "我们小区在清河街道。电梯坏了三个月没人修，老人上下楼很危险。希望物业尽快修好电梯。"
    )
    assert background == ["我们小区在清河街道。"]
    assert problems == ["电梯坏了三个月没人修，老人上下楼很危险。"]
    assert demands == ["希望物业尽快修好电梯。"]


def _case(**kw):
    base = dict(number="SL2026-000042", title="", summary="", topic="housing_property", needs_review=False,
                place="东湖区清河街道柳岸社区", district=None, street=None, community=None,
                supporter_count=2, created_at=datetime(2026, 5, 1, 9, 30))
    base.update(kw)
    return SimpleNamespace(**base)


def _sub(i: int, text: str):
    return SimpleNamespace(id=i, text=text, title=None, created_at=datetime(2026, 5, 1, 9, i))


def test_report_has_every_section_and_no_personal_data(var_dir) -> None:
    taxonomy = load_taxonomy()
    subs = [
        _sub(1, "我叫张三，电话13812345678。小区3号楼电梯坏了三个月没人修，老人上下楼很危险。希望物业尽快修好电梯。"),
        _sub(2, "王师傅说配件还没到。建议街道督促物业公开维修基金的使用情况。"),
    ]
    report = build_report(_case(), subs, taxonomy)
    assert report.category == "物业与住房"
    assert report.committee == "城乡建设委员会"
    assert report.supporters == 2
    assert report.location == "东湖区清河街道柳岸社区"
    assert any("电梯" in p for p in report.problems)
    assert any("维修基金" in d for d in report.demands)  # the second resident's request is kept too
    assert "电梯" in report.keywords
    assert report.link.endswith("/api/v1/cases/SL2026-000042")
    body = render("report.md.j2", r=report)
    for heading in ("社情民意信息", "类别", "地点", "反映人数", "基本情况", "存在问题", "群众诉求/建议", "关键词"):
        assert heading in body
    for secret in ("张三", "13812345678", "王师傅"):
        assert secret not in body


def test_report_keeps_contact_of_consenting_resident(var_dir) -> None:
    subs = [_sub(1, "我叫张三，电话13812345678，路灯坏了。")]
    report = build_report(_case(), subs, load_taxonomy(), consent_by_submission={1: True})
    assert "13812345678" in report.quotes[0]

"""Reports and digests: a 社情民意信息 worth reading, with anonymity and consent honoured everywhere."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

import bot.routing.models  # noqa: F401  (registers the routing tables on Base)
from bot.delivery.digest import build_digest
from bot.reports.compose import ANONYMOUS, NO_CONTACT, build_report, sort_sentences
from bot.reports.render import render
from bot.reports.subject import report_subject, short_place
from bot.routing.dispatch import on_case_filed, reset_directory_cache
from bot.routing.models import OutboxMessage
from bot.storage import repository
from bot.storage.models import Base, utcnow
from bot.topics.taxonomy import load_taxonomy

OPENER = ("你好，我是住在柳岸社区5号楼301的老张，电话13612345678，另一个号码１３７１２３４５６７８，"
          "座机057188886666。我们3号楼电梯坏了三个月没人修，老人上下楼很危险。希望物业尽快修好电梯。")
SECRETS = ("13612345678", "１３７１２３４５６７８", "057188886666", "老张", "张建国", "301")


def _case(**kw):
    base = dict(number="SL2026-000042", title="", summary="", topic="housing_property", needs_review=False,
                place="东湖区清河街道柳岸社区", district=None, street=None, community=None,
                supporter_count=1, created_at=datetime(2026, 5, 1, 9, 30))
    base.update(kw)
    return SimpleNamespace(**base)


def _sub(i: int, text: str, anonymous: bool = False, **kw):
    base = dict(id=i, text=text, title=None, anonymous=anonymous, kind="concern", since_when=None, scope=None,
                created_at=datetime(2026, 5, 1, 9, i))
    base.update(kw)
    return SimpleNamespace(**base)


def _contact(name: str, phone: str, consent: bool):
    return SimpleNamespace(name=name, phone=phone, consent=consent)


def _everything(report) -> str:
    """Every text a member can read: the rendered report and the payload backends send."""
    return render("report.md.j2", r=report) + repr(report.to_dict())


def test_subject_says_what_is_wrong_and_where_not_who_wrote() -> None:
    report = build_report(_case(), [_sub(1, OPENER)], load_taxonomy())
    assert not report.title.startswith(("你好", "我是"))
    assert "柳岸社区" in report.title and "电梯" in report.title
    assert len(report.title) <= 30
    assert short_place("东湖区清河街道柳岸社区") == "柳岸社区"
    assert report_subject("你好，我想反映个问题。") == "群众反映问题"


def test_anonymous_resident_is_anonymous_everywhere_even_with_consent(var_dir) -> None:
    report = build_report(_case(), [_sub(1, OPENER, anonymous=True, since_when="三个月前", scope="整栋楼的住户")],
                          load_taxonomy(), contacts={1: _contact("张建国", "13612345678", consent=True)})
    assert report.reporters == [ANONYMOUS]
    text = _everything(report)
    for secret in SECRETS:
        assert secret not in text
    assert ANONYMOUS in text
    assert report.since_when == "三个月前" and report.scope == "整栋楼的住户"


def test_consenting_resident_is_listed_with_contact_but_keywords_and_title_stay_clean(var_dir) -> None:
    report = build_report(_case(), [_sub(1, "我叫李娜，电话13912345678。小区门口的路灯坏了一个月，晚上很黑。")],
                          load_taxonomy(), contacts={1: _contact("李娜", "13912345678", consent=True)})
    assert report.reporters == ["李娜 13912345678"]
    assert "13912345678" in report.quotes[0]  # a member can call back
    for field in (report.title, " ".join(report.keywords), " ".join(report.problems)):
        assert "13912345678" not in field and "李娜" not in field


def test_resident_without_consent_leaves_no_contact(var_dir) -> None:
    report = build_report(_case(), [_sub(1, OPENER)], load_taxonomy(),
                          contacts={1: _contact("张建国", "13612345678", consent=False)})
    assert report.reporters == [NO_CONTACT]
    text = _everything(report)
    for secret in SECRETS:
        assert secret not in text
    assert "[电话已隐去]" in report.quotes[0]


def test_problem_and_suggestion_apart_and_the_words_once(var_dir) -> None:
    subs = [_sub(1, OPENER), _sub(2, "王师傅说配件还没到。建议街道督促物业公开维修基金的使用情况。")]
    report = build_report(_case(supporter_count=2), subs, load_taxonomy())
    assert report.problems == ["我们3号楼电梯坏了三个月没人修，老人上下楼很危险。"]
    assert report.demands == ["希望物业尽快修好电梯。", "建议街道督促物业公开维修基金的使用情况。"]
    assert report.supporters == 2
    body = render("report.md.j2", r=report)
    assert body.count("老人上下楼很危险") == 2  # the problem once, the resident's words once
    for heading in ("社情民意信息", "基本情况", "地点", "起始时间", "影响范围", "反映人数", "存在问题", "群众建议",
                    "群众原话", "关键词"):
        assert heading in body
    assert "王师傅" not in body
    assert report.link.endswith("/console/cases/SL2026-000042")
    assert "/api/v1/" not in body


def test_no_suggestion_section_when_none_was_given(var_dir) -> None:
    report = build_report(_case(), [_sub(1, "小区门口的路灯坏了一个月，晚上很黑。")], load_taxonomy())
    assert report.demands == []
    assert "群众建议" not in render("report.md.j2", r=report)


def test_sentences_sorted_without_the_introduction() -> None:
    problems, demands = sort_sentences("我是[门牌已隐去]的住户，电话[电话已隐去]。电梯坏了三个月没人修。希望尽快修好。")
    assert problems == ["电梯坏了三个月没人修。"]
    assert demands == ["希望尽快修好。"]


def test_keywords_come_from_redacted_text_only(var_dir) -> None:
    report = build_report(_case(), [_sub(1, OPENER)], load_taxonomy(),
                          contacts={1: _contact("张建国", "13612345678", consent=False)})
    assert "电梯" in report.keywords
    assert not any(k in "".join(SECRETS) or "隐去" in k or k.isdigit() for k in report.keywords)


@pytest.fixture()
def session(var_dir: Path):
    engine = create_engine(f"sqlite:///{var_dir / 'reports.db'}")
    Base.metadata.create_all(engine)
    reset_directory_cache()
    s = sessionmaker(bind=engine, expire_on_commit=False)()
    yield s
    s.close()
    engine.dispose()


def test_routed_report_and_digest_of_an_anonymous_resident(session) -> None:
    sub = repository.create_submission(
        session, text=OPENER, place="东湖区清河街道柳岸社区", topic="urban_construction", topic_confidence=0.91,
        anonymous=True, contact={"phone": "13612345678", "name": "张建国", "consent": True})
    session.commit()
    on_case_filed(session, sub.case_id)
    session.commit()
    messages = session.query(OutboxMessage).filter_by(case_id=sub.case_id).all()
    assert messages
    for message in messages:
        text = message.subject + message.body + repr(message.payload)
        assert ANONYMOUS in message.body
        for secret in SECRETS:
            assert secret not in text
    member = messages[0].member_id
    digest = build_digest(session, member, now=utcnow() + timedelta(minutes=1))
    (row,) = digest.new
    assert "电梯" in row["title"] and not row["title"].startswith("你好")
    assert row["link"].endswith(f"/console/cases/{row['number']}")
    for secret in SECRETS:
        assert secret not in repr(row)

"""Routing: directory loading and validation, rules, dispatch of filed cases into routes and outbox."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

import bot.routing.models  # noqa: F401  (registers the routing tables on Base)
from bot.cli import main as cli
from bot.config import REPO_ROOT
from bot.routing.directory import DirectoryError, load_directory, store_directory, validate
from bot.routing.dispatch import on_case_filed, reset_directory_cache
from bot.routing.models import Committee, Member, MemberArea, OutboxMessage, Route
from bot.routing.rules import CaseFacts, coverage, route
from bot.storage import repository
from bot.storage.models import Base, Case, CaseEvent
from bot.topics.taxonomy import load_taxonomy

DEFAULT = REPO_ROOT / "routing.yml"


@pytest.fixture()
def session(var_dir: Path):
    engine = create_engine(f"sqlite:///{var_dir / 'routing.db'}")
    Base.metadata.create_all(engine)
    reset_directory_cache()
    s = sessionmaker(bind=engine, expire_on_commit=False)()
    yield s
    s.close()
    engine.dispose()


def test_default_config_is_valid_and_covers_every_topic() -> None:
    taxonomy = load_taxonomy()
    directory = load_directory(DEFAULT)
    assert validate(directory, taxonomy) == []
    cov = coverage(directory, taxonomy)
    assert cov["topics_with_committee_contact"] == cov["topics_total"] == len(taxonomy.topics)


def test_routing_check_cli_prints_json(capsys) -> None:
    assert cli(["routing", "check", "--file", str(DEFAULT)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["ok"] is True


def test_invalid_config_gives_clear_errors(tmp_path: Path, capsys) -> None:
    data = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    data["duty_desk"] = "nobody"
    data["rules"]["sectors"]["education"] = ["不存在的界别"]
    data["committees"]["economy"]["contacts"] = ["ghost"]
    data["members"][1]["channels"] = [{"backend": "pigeon"}]
    data["members"][2]["channels"] = [{"backend": "webhook"}]
    bad = tmp_path / "routing.yml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    errors = validate(load_directory(bad), load_taxonomy())
    text = "\n".join(errors)
    assert "duty_desk 'nobody'" in text
    assert "不存在的界别" in text
    assert "'ghost' is not a member id" in text
    assert "unknown delivery backend 'pigeon'" in text
    assert "webhook channel needs a url" in text
    assert "market_regulation" in text  # its committee lost its only contact
    assert cli(["routing", "check", "--file", str(bad)]) == 1


def test_duplicate_member_ids_are_rejected(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    data["members"].append(dict(data["members"][3]))
    bad = tmp_path / "routing.yml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DirectoryError, match="appears twice"):
        load_directory(bad)


def test_members_csv_is_merged(tmp_path: Path) -> None:
    (tmp_path / "members.csv").write_text(
        "id,name,sector,committee,district,street,community,backend,address\n"
        "m_csv,示例委员甲,,,东湖区,清河街道,,email,a@example.org\n"
        "m_csv,示例委员甲,,,南湖区,,,email,a@example.org\n", encoding="utf-8")
    data = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    data["members_csv"] = "members.csv"
    path = tmp_path / "routing.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    member = load_directory(path).members["m_csv"]
    assert member.channels == [{"backend": "email", "to": "a@example.org"}]
    assert [a.label() for a in member.areas] == ["东湖区清河街道", "南湖区"]


def test_rules_combine_topic_area_sector_and_duty_desk() -> None:
    taxonomy, directory = load_taxonomy(), load_directory(DEFAULT)
    got = route(CaseFacts(topic="education", place="东湖区清河街道柳岸社区3栋"), directory, taxonomy)
    reasons = {r.member_id: r.reason for r in got}
    assert reasons["m_su_wen"].startswith("topic:education")          # committee contact (also 教育界)
    assert reasons["m_zhou_jian"] == "area:东湖区"                       # district 包联
    assert reasons["m_lin_qing"] == "area:东湖区清河街道"                  # street 包联
    assert reasons["m_lu_gong"] == "area:东湖区清河街道柳岸社区"            # community 包联
    assert "duty_office" not in reasons
    assert all(r.committee == "education_science_health" for r in got)

    sector = route(CaseFacts(topic="health"), directory, taxonomy)
    assert {r.member_id for r in sector} == {"m_su_wen", "m_bai_zhi"}

    nothing = route(CaseFacts(topic=None, place="火星"), directory, taxonomy)
    assert [(r.member_id, r.reason) for r in nothing] == [("duty_office", "duty:no_match")]

    unsure = route(CaseFacts(topic="transport", needs_review=True), directory, taxonomy)
    assert "duty_office" in {r.member_id for r in unsure}


def test_street_without_district_is_located() -> None:
    taxonomy, directory = load_taxonomy(), load_directory(DEFAULT)
    got = {r.member_id for r in route(CaseFacts(topic="transport", place="枫林街道菜场门口"), directory, taxonomy)}
    assert "m_qian_hai" in got


def test_on_case_filed_records_routes_outbox_and_event(session) -> None:
    sub = repository.create_submission(
        session, text="我叫张三，电话13812345678。清河街道柳岸社区门口的路灯坏了一个月，晚上很黑。希望尽快修好。",
        place="东湖区清河街道柳岸社区", topic="urban_construction", topic_confidence=0.91,
        contact={"phone": "13812345678", "name": "张三", "consent": False})
    session.commit()
    case_id = sub.case_id
    recipients = on_case_filed(session, case_id)
    session.commit()
    assert {r.member_id for r in recipients} == {"m_zhou_jian", "m_lin_qing", "m_lu_gong"}
    routes = session.query(Route).filter_by(case_id=case_id).all()
    assert {r.member_id for r in routes} == {"m_zhou_jian", "m_lin_qing", "m_lu_gong"}
    messages = session.query(OutboxMessage).filter_by(case_id=case_id).all()
    assert len(messages) == 3 and all(m.status == "pending" and m.backend == "file" for m in messages)
    body = messages[0].body
    assert "社情民意信息" in body and "城乡建设" in body
    assert "13812345678" not in body and "张三" not in body
    case = session.get(Case, case_id)
    assert case.status == "assigned"
    assert session.query(CaseEvent).filter_by(case_id=case_id, kind="routed").count() == 1

    # A second call (e.g. after another resident joined the case) sends nothing twice.
    repository.create_submission(session, text="路灯还是没修", case_id=case_id)
    session.commit()
    assert on_case_filed(session, case_id) == []
    assert session.query(OutboxMessage).filter_by(case_id=case_id).count() == 3


def test_on_case_filed_classifies_unlabelled_case(session, monkeypatch) -> None:
    from bot.topics import service

    service.reset_classifier()
    monkeypatch.setattr(service, "embed_concerns", lambda texts, cache=True: None)  # lexical model only
    try:
        sub = repository.create_submission(session, text="小区物业费年年涨，电梯坏了一个星期也不修，业主意见很大")
        session.commit()
        recipients = on_case_filed(session, sub.case_id)
        session.commit()
        case = session.get(Case, sub.case_id)
        assert case.topic is not None and 0.0 < case.topic_confidence <= 1.0
        assert recipients, "every case reaches someone"
        if case.needs_review:
            assert "duty_office" in {r.member_id for r in recipients}
    finally:
        service.reset_classifier()


def test_jurisdiction_reaches_the_district_members(session) -> None:
    """The place names no district, the concern did (Case.jurisdiction): the district's 包联 member gets it."""
    sub = repository.create_submission(session, text="西山区幸福小区3号楼门口的路灯坏了", place="幸福小区3号楼",
                                       topic="urban_construction", topic_confidence=0.9, jurisdiction="西山区")
    session.commit()
    recipients = {r.member_id for r in on_case_filed(session, sub.case_id)}
    assert "m_su_wen" in recipients  # areas: [{district: 西山区}]
    assert "m_qian_hai" not in recipients  # 西山区 枫林街道 only


def test_two_routers_store_the_directory_at_once_on_a_fresh_database(db_factory: sessionmaker) -> None:
    """Both store the member directory into empty tables at the same time: the second waits for the
    first instead of failing on a duplicate key, and every committee, member and area exists once."""
    taxonomy, directory = load_taxonomy(), load_directory(DEFAULT)
    first_stored, errors = threading.Event(), []

    def store(hold: bool) -> None:
        try:
            with db_factory() as s:
                store_directory(s, directory, taxonomy)
                if hold:  # keep the transaction open while the other router reads and writes
                    first_stored.set()
                    time.sleep(0.5)
                s.commit()
        except Exception as exc:
            errors.append(exc)
            first_stored.set()

    def store_second() -> None:
        first_stored.wait(10)
        store(hold=False)

    threads = [threading.Thread(target=store, args=(True,)), threading.Thread(target=store_second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    areas = sum(len(m.areas) for m in directory.members.values())
    with db_factory() as s:
        assert s.query(Committee).count() == len(taxonomy.committees)
        assert sorted(m for (m,) in s.query(Member.id)) == sorted(directory.members)
        assert s.query(MemberArea).count() == areas
        assert s.query(Member).filter(Member.active.is_(True)).count() == len(directory.members)

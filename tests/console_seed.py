"""Seed a database for console tests: committees, members, routes, cases, accounts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot.accounts import service as accounts
from bot.routing.models import Committee, Member, Route
from bot.storage import db, repository
from bot.storage.models import Contact

PASSWORD = "console-test-pass-1"


@dataclass
class Seeded:
    wang_case: str  # routed to member wang (transport committee), status assigned
    li_case: str  # routed to member li (environment committee)
    desk_case: str  # received, not routed
    phone: str  # a consented resident's phone on wang_case
    secret_phone: str  # a non-consenting resident's phone written in li_case's text


def _case(session: Session, text: str, *, place: str, topic: str, status: str, members: list[Member],
          contact: dict | None = None, anonymous: bool = False) -> str:
    sub = repository.create_submission(session, text=text, channel="web", sender="seed", place=place,
                                       topic=topic, anonymous=anonymous)
    case = sub.case
    case.status = status
    case.district = place[:3]
    if contact:
        session.add(Contact(submission_id=sub.id, **contact))
    for member in members:
        session.add(Route(case_id=case.id, member_id=member.id, committee_id=member.committee_id,
                          reason="topic"))
    session.flush()
    return str(case.number)


def seed(url: str) -> Seeded:
    import bot.accounts.models  # noqa: F401
    import bot.routing.models  # noqa: F401

    db.upgrade(url)
    with db.session_scope(url) as session:
        session.add_all([Committee(id="transport", name="交通专委会"), Committee(id="env", name="人口资源环境委员会")])
        wang = Member(id="wang", name="王委员", committee_id="transport", is_duty_desk=False, active=True)
        li = Member(id="li", name="李委员", committee_id="env", is_duty_desk=False, active=True)
        desk = Member(id="desk", name="值班室", committee_id=None, is_duty_desk=True, active=True)
        session.add_all([wang, li, desk])
        session.flush()
        wang_case = _case(session, "幸福路和建设路路口的红绿灯坏了一个星期了，早晚高峰车堵得厉害，过马路很危险。",
                          place="西湖区幸福路建设路口", topic="transport", status="assigned", members=[wang],
                          contact={"phone": "13912345678", "name": "张三", "consent": True})
        li_case = _case(session, "小区门口垃圾站一直没人清运，臭气很大。我电话13800001111，别公开。",
                        place="拱墅区和睦街道", topic="environment", status="assigned", members=[li])
        desk_case = _case(session, "菜市场旁边的路灯晚上不亮，老人走路看不清。", place="上城区清波街道",
                          topic="urban_construction", status="received", members=[])
        for i in range(60):  # enough for a second page
            _case(session, f"第{i}号楼下水管道堵塞，污水外溢。", place="滨江区长河街道", topic="environment",
                  status="received" if i % 2 else "in_progress", members=[])
        accounts.create_user(session, "staff1", PASSWORD, "staff", display_name="机关小陈")
        accounts.create_user(session, "wang", PASSWORD, "member", member_id="wang", committee_id="transport",
                             display_name="王委员")
        accounts.create_user(session, "zhao", PASSWORD, "staff", display_name="机关小赵")
        accounts.create_user(session, "li", PASSWORD, "member", member_id="li", committee_id="env",
                             display_name="李委员")
    db.dispose_engines()
    return Seeded(wang_case=wang_case, li_case=li_case, desk_case=desk_case, phone="13912345678",
                  secret_phone="13800001111")

"""Short staff-facing messages (派单, 退回, 催办) to members through the outbox, in the caller's
transaction: the message is queued if and only if the change commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.config import settings
from bot.delivery.outbox import enqueue
from bot.routing.models import Member
from bot.storage.models import Case
from bot.text.redact import subject_line


def console_link(number: str) -> str:
    base = str(settings().get("service", {}).get("public_url", "")).rstrip("/")
    return f"{base}/console/cases/{number}"


def case_subject(case: Case) -> str:
    """What a message subject says about the case: a short redacted line, never raw resident text."""
    return subject_line(case.title or case.summary or "") or "群众反映"


def notify_member(session: Session, member_id: str, case: Case, *, key: str, subject: str,
                  lines: list[str], kind: str = "workflow") -> int:
    """Queue one message per channel of the member; `key` makes it idempotent. Returns rows added."""
    member = session.get(Member, member_id)
    if member is None or not member.active:
        return 0
    body = "\n".join([f"# {subject}", "", *[f"- {line}" for line in lines], "",
                      f"[在工作台查看案件]({console_link(case.number or '')})", ""])
    added = 0
    for i, channel in enumerate(member.channels or []):
        row = enqueue(session, key=f"{key}:{i}", backend=channel["backend"],
                      target={k: v for k, v in channel.items() if k != "backend"}, subject=subject,
                      body=body, payload={"case_number": case.number, "kind": kind},
                      case_id=case.id, member_id=member.id, kind=kind)
        added += row is not None
    return added


def duty_desk_id(session: Session) -> str | None:
    row = (session.query(Member.id).filter(Member.is_duty_desk.is_(True), Member.active.is_(True))
           .order_by(Member.id).first())
    return row[0] if row else None

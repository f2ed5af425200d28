"""Case views by audience. The public (anyone holding a case number, or another resident) gets the
public view; the resident who filed the case and staff get the full view. Both are redacted: no view
carries contact data, sender ids, or text that has not been through bot.text.redact.

Public view: number, status, status label, dates, supporters and a redacted one-line subject.
Full view: adds the redacted title and summary, place, topic, jurisdiction and the public timeline.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage import repository
from bot.storage.models import CASE_STATUS_LABELS, Case, CaseEvent, Submission
from bot.text.redact import redact, subject_line

log = logging.getLogger(__name__)

HIDDEN = "［内容已隐去］"


class TopicNamer(Protocol):
    def topic_view(self, case: Case) -> dict[str, Any] | None: ...


def iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def safe_redact(text: str | None) -> str | None:
    """Redacted text; when redaction itself fails the whole text is hidden, never shown as it is."""
    if not text:
        return text
    try:
        return redact(text)
    except Exception:
        log.exception("redaction failed; hiding the whole text")
        return HIDDEN


def safe_subject(case: Case) -> str:
    try:
        return subject_line(case.title or case.summary or "")
    except Exception:
        log.exception("subject line failed for case %s; hiding it", case.number)
        return HIDDEN


def status_label(status: str) -> str:
    return CASE_STATUS_LABELS.get(status, status)


def public_case_view(case: Case) -> dict[str, Any]:
    """What anyone with the number may see: never text beyond the redacted subject line."""
    return {
        "case_number": case.number,
        "status": case.status,
        "status_label": status_label(case.status),
        "subject_line": safe_subject(case),
        "supporters": int(case.supporter_count),
        "created_at": iso(case.created_at),
        "updated_at": iso(case.updated_at),
        "view": "public",
    }


def timeline(session: Session, case: Case) -> list[dict[str, Any]]:
    """The case's public updates (visibility "public": internal notes never), oldest first; actors
    (member names) are not shown."""
    events = session.execute(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.visibility == "public")
        .order_by(CaseEvent.id)
    ).scalars()
    return [{"time": iso(e.created_at), "kind": e.kind, "status": e.status,
             "status_label": status_label(e.status) if e.status else None, "note": safe_redact(e.note)}
            for e in events]


def full_case_view(pipeline: TopicNamer, session: Session, case: Case) -> dict[str, Any]:
    """For the resident who filed the case and for staff: still redacted, still no contact data."""
    view = public_case_view(case)
    events = timeline(session, case)
    event = repository.last_update(session, case)  # the latest public event; internal notes never
    view.update({
        "view": "full",
        "title": safe_redact(case.title),
        "summary": safe_redact(case.summary),
        "topic": pipeline.topic_view(case),
        "place": safe_redact(case.place),
        "jurisdiction": case.jurisdiction,
        "timeline": events,
        "last_update": {"time": iso(event.created_at), "note": safe_redact(event.note)} if event else None,
    })
    return view


def filed_by(session: Session, case: Case, resident: tuple[str, str] | None) -> bool:
    """True when the resident (channel, pseudonym) has a submission in this case."""
    if resident is None:
        return False
    channel, pseudonym = resident
    found = session.execute(
        select(Submission.id).where(Submission.case_id == case.id, Submission.sender == pseudonym,
                                    Submission.channel == channel).limit(1)
    ).first()
    return found is not None


def case_view_for(pipeline: TopicNamer, session: Session, case: Case, *, staff: bool,
                  resident: tuple[str, str] | None) -> dict[str, Any]:
    """The view this audience may see of the case (see the module docstring)."""
    if staff or filed_by(session, case, resident):
        return full_case_view(pipeline, session, case)
    return public_case_view(case)

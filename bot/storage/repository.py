"""Session-level operations on cases and submissions (used by the service and by `shangliang import`).

Callers own the transaction (see bot.storage.db.session_scope); functions here flush but never commit,
so a case, its number, its first submission and its events are stored together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.storage.case_numbers import allocate_number, normalize_number
from bot.storage.models import (
    CASE_STATUS_LABELS,
    CLOSED_STATUSES,
    Case,
    CaseEvent,
    Contact,
    Handoff,
    Submission,
    utcnow,
)
from bot.storage.summary import derive_summary, derive_title

KINDS = ("concern", "suggestion")


class CaseClosedError(Exception):
    """The case is finished (see CLOSED_STATUSES): it takes no new supporters."""

    def __init__(self, number: str | None) -> None:
        super().__init__(f"case {number} is closed")
        self.number = number


def accepts_supporters(case: Case) -> bool:
    """Open cases gain supporters; resolved, closed and merged-away ones do not."""
    return case.status not in CLOSED_STATUSES


def _vector_bytes(embedding: Any) -> bytes | None:
    if embedding is None:
        return None
    if isinstance(embedding, (bytes, bytearray, memoryview)):
        return bytes(embedding)
    return np.asarray(embedding, dtype=np.float32).reshape(-1).tobytes()


def vector_of(submission: Submission) -> np.ndarray | None:
    """The stored embedding as float32, or None."""
    if not submission.embedding:
        return None
    return np.frombuffer(submission.embedding, dtype=np.float32)


def add_event(session: Session, case: Case, kind: str, *, status: str | None = None,
              note: str | None = None, actor: str | None = None, when: datetime | None = None) -> CaseEvent:
    event = CaseEvent(case_id=case.id, kind=kind, status=status, note=note, actor=actor,
                      created_at=when or utcnow())
    session.add(event)
    return event


def open_case(session: Session, *, text: str, kind: str = "concern", title: str | None = None,
              place: str | None = None, campaign: str | None = None, topic: str | None = None,
              topic_confidence: float | None = None, jurisdiction: str | None = None,
              created_at: datetime | None = None) -> Case:
    """A new case with its number, in the caller's transaction."""
    when = created_at or utcnow()
    case = Case(
        number=allocate_number(session, when),
        title=(title or derive_title(text))[:200],
        summary=derive_summary(text),
        kind=kind if kind in KINDS else "concern",
        status="received",
        topic=topic,
        topic_confidence=topic_confidence,
        place=place,
        jurisdiction=jurisdiction,
        campaign=campaign,
        supporter_count=1,
        created_at=when,
        updated_at=when,
    )
    session.add(case)
    session.flush()
    add_event(session, case, "created", status="received", when=when)
    return case


def live_case(session: Session, case: Case) -> Case:
    """Follow `merged_into` links to the case that is still open for this concern."""
    seen = {case.id}
    while case.merged_into_id is not None and case.merged_into_id not in seen:
        seen.add(case.merged_into_id)
        case = session.get(Case, case.merged_into_id)
    return case


def _add_supporter(session: Session, case: Case, when: datetime) -> None:
    """One more supporter, unless the case is closed (raises CaseClosedError). One conditional UPDATE:
    concurrent supporters are all counted, and a case closed by staff meanwhile is never joined."""
    session.flush()
    result = session.execute(
        update(Case)
        .where(Case.id == case.id, Case.status.notin_(sorted(CLOSED_STATUSES)))
        .values(supporter_count=Case.supporter_count + 1, updated_at=when)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise CaseClosedError(case.number)
    session.refresh(case, ["supporter_count", "updated_at", "status"])
    add_event(session, case, "supporter", when=when)


def create_submission(
    session: Session,
    *,
    text: str,
    channel: str = "rest",
    sender: str | None = None,
    kind: str = "concern",
    place: str | None = None,
    since_when: str | None = None,
    scope: str | None = None,
    anonymous: bool = False,
    campaign: str | None = None,
    media: list[dict[str, Any]] | None = None,
    contact: dict[str, Any] | None = None,
    external_id: str | None = None,
    source: str = "live",
    label: str | None = None,
    title: str | None = None,
    created_at: datetime | None = None,
    embedding: Any = None,
    embedding_model: str | None = None,
    case_id: int | None = None,
    topic: str | None = None,
    topic_confidence: float | None = None,
    dedup_decision: str | None = None,
    candidate_case_id: int | None = None,
    dedup_score: float | None = None,
    jurisdiction: str | None = None,
) -> Submission:
    """Store one submission. Opens a case (with its number) unless `case_id` names one to join
    (CaseClosedError when that case is closed: the caller files a new case instead).

    `sender` must already be pseudonymised. Contact data is stored only with consent=True, and only
    in the contacts table.
    """
    when = created_at or utcnow()
    kind = kind if kind in KINDS else "concern"
    if case_id is None:
        case = open_case(session, text=text, kind=kind, title=title, place=place, campaign=campaign,
                         topic=topic, topic_confidence=topic_confidence, jurisdiction=jurisdiction,
                         created_at=when)
    else:
        case = session.get(Case, case_id)
        if case is None:
            raise LookupError(f"no case with id {case_id}")
        case = live_case(session, case)
        _add_supporter(session, case, when)
    submission = Submission(
        case_id=case.id,
        channel=channel or "rest",
        sender=sender,
        kind=kind,
        text=text,
        title=title,
        place=place,
        since_when=since_when,
        scope=scope,
        anonymous=bool(anonymous),
        campaign=campaign,
        media=media or None,
        source=source,
        external_id=external_id,
        label=label,
        dedup_decision=dedup_decision or ("auto_merged" if case_id is not None else "new"),
        candidate_case_id=candidate_case_id,
        dedup_score=dedup_score,
        embedding=_vector_bytes(embedding),
        embedding_model=embedding_model,
        created_at=when,
    )
    session.add(submission)
    session.flush()
    if contact and contact.get("consent") is True and (contact.get("phone") or contact.get("name")):
        session.add(Contact(submission_id=submission.id, phone=contact.get("phone"),
                            name=contact.get("name"), consent=True, created_at=when))
        session.flush()
    return submission


def merge_submission(session: Session, submission_id: int, target_case_id: int) -> Case:
    """Move a submission to another case (the resident confirmed "same issue").

    Its provisional case, if nothing else is left in it, becomes `merged`; the target gains a supporter.
    Raises CaseClosedError (nothing changed) when the target is closed: the submission keeps its own case.
    """
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise LookupError(f"no submission {submission_id}")
    target = session.get(Case, target_case_id)
    if target is None:
        raise LookupError(f"no case with id {target_case_id}")
    target = live_case(session, target)
    old = session.get(Case, submission.case_id)
    if old is not None and old.id == target.id:
        return target
    when = utcnow()
    _add_supporter(session, target, when)  # first: a closed target refuses before anything moves
    submission.case_id = target.id
    submission.dedup_decision = "confirmed"
    session.flush()
    if old is not None:
        remaining = session.execute(
            select(func.count(Submission.id)).where(Submission.case_id == old.id)
        ).scalar_one()
        if remaining == 0:
            old.status = "merged"
            old.merged_into_id = target.id
            old.updated_at = when
            add_event(session, old, "merged", status="merged", note=f"已并入 {target.number}", when=when)
        else:
            old.supporter_count = Case.supporter_count - 1
            old.updated_at = when
    session.flush()
    return target


def claim_for_routing(session: Session, case_id: int) -> bool:
    """Lock a case that still waits for routing (status `received`) for this transaction. False when it
    was routed meanwhile: a second router waits for the first one's commit, then finds nothing to do."""
    result = session.execute(
        update(Case)
        .where(Case.id == case_id, Case.status == "received")
        .values(updated_at=Case.updated_at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def keep_submission(session: Session, submission_id: int) -> Submission:
    """The resident said the suggested case is a different issue."""
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise LookupError(f"no submission {submission_id}")
    submission.dedup_decision = "declined"
    session.flush()
    return submission


def get_case_by_number(session: Session, number: str) -> Case | None:
    """Case lookup that tolerates lowercase, full-width characters and spaces."""
    normalized = normalize_number(number)
    if not normalized:
        return None
    return session.execute(select(Case).where(Case.number == normalized)).scalar_one_or_none()


def get_submission_by_external_id(session: Session, external_id: str) -> Submission | None:
    return session.execute(
        select(Submission).where(Submission.external_id == external_id)
    ).scalar_one_or_none()


def cases_for_sender(session: Session, sender: str, channel: str | None = None,
                     limit: int = 20) -> list[Case]:
    """The live cases a (pseudonymised) sender has submitted to, newest submission first."""
    stmt = select(Submission.case_id, func.max(Submission.created_at).label("latest")).where(
        Submission.sender == sender
    )
    if channel:
        stmt = stmt.where(Submission.channel == channel)
    stmt = stmt.group_by(Submission.case_id).order_by(func.max(Submission.created_at).desc()).limit(limit)
    cases: list[Case] = []
    seen: set[int] = set()
    for case_id, _latest in session.execute(stmt):
        case = live_case(session, session.get(Case, case_id))
        if case.id not in seen:
            seen.add(case.id)
            cases.append(case)
    return cases


def update_case(session: Session, case: Case, *, status: str | None = None, note: str | None = None,
                actor: str | None = None) -> Case:
    """Staff/member update: a status change and/or a note the resident can read."""
    if status is not None and status not in CASE_STATUS_LABELS:
        raise ValueError(f"unknown status {status!r}")
    when = utcnow()
    if status is not None and status != case.status:
        case.status = status
        add_event(session, case, "status", status=status, note=note, actor=actor, when=when)
    elif note:
        add_event(session, case, "note", note=note, actor=actor, when=when)
    case.updated_at = when
    session.flush()
    return case


def last_update(session: Session, case: Case) -> CaseEvent | None:
    """The latest public event, for "what happened to my case" (internal notes are never shown)."""
    return session.execute(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.visibility == "public")
        .order_by(CaseEvent.id.desc()).limit(1)
    ).scalar_one_or_none()


def create_handoff(session: Session, *, channel: str, sender: str | None, text: str | None,
                   reason: str = "requested") -> Handoff:
    handoff = Handoff(channel=channel or "rest", sender=sender, text=text, reason=reason or "requested",
                      status="open", created_at=utcnow())
    session.add(handoff)
    session.flush()
    return handoff


def past_concerns(session: Session, submission_ids: Sequence[int]) -> list[Submission]:
    """Submissions by id (for the duplicate detector's re-check), in the order asked for."""
    if not submission_ids:
        return []
    rows = session.execute(select(Submission).where(Submission.id.in_(list(submission_ids)))).scalars()
    by_id = {s.id: s for s in rows}
    return [by_id[i] for i in submission_ids if i in by_id]


def submissions_without_vectors(session: Session, limit: int = 256) -> list[Submission]:
    """Stored concerns the encoder has not seen yet (it was unavailable when they arrived)."""
    return list(session.execute(
        select(Submission).where(Submission.embedding.is_(None)).order_by(Submission.id).limit(limit)
    ).scalars())


def counts(session: Session) -> dict[str, Any]:
    """Totals for /metrics: submissions, and cases by status."""
    submissions = session.execute(select(func.count(Submission.id))).scalar_one()
    by_status = dict(session.execute(select(Case.status, func.count(Case.id)).group_by(Case.status)).all())
    return {"submissions": int(submissions), "cases_by_status": {k: int(v) for k, v in by_status.items()}}

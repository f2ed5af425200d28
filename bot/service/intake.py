"""The intake pipeline for one submission: validate, encode once, classify, check duplicates,
commit, then index and route. The commit happens before the response, so nothing accepted is lost;
index and routing failures after it are logged and repaired later (index catch-up).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.config import settings
from bot.service.analysis import Analysis, DedupResult
from bot.service.decision_lock import CATCH_UP_WINDOW, lock_decision
from bot.service.errors import ApiError
from bot.service.index_sync import notify_stored
from bot.service.jurisdiction import jurisdiction_of, routing_directory
from bot.service.metrics import Metrics
from bot.service.pseudonym import pseudonymise
from bot.service.validation import (
    channel_name,
    clean_text,
    optional_bool,
    optional_str,
    required_text,
)
from bot.service.views import safe_subject
from bot.storage import repository
from bot.storage.models import CASE_STATUS_LABELS, Case, Submission, utcnow
from bot.text.places import find_place, place_parts
from bot.text.redact import redact_at_rest

log = logging.getLogger(__name__)

# How long a submission waits for an encoder that is still loading before it is stored without a vector.
ENCODER_WAIT_SECONDS = 10.0


@dataclass
class SubmissionRequest:
    text: str
    kind: str = "concern"
    channel: str = "rest"
    sender: str | None = None
    place: str | None = None
    since_when: str | None = None
    scope: str | None = None
    anonymous: bool = False
    contact: dict[str, Any] | None = None
    campaign: str | None = None
    media: list[dict[str, Any]] = field(default_factory=list)
    client_ref: str | None = None


def _contact(payload: dict[str, Any]) -> dict[str, Any] | None:
    value = payload.get("contact")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError("invalid_field", "联系方式格式不正确。")
    phone = optional_str(value, "phone", 32, "电话")
    name = optional_str(value, "name", 64, "称呼")
    consent = optional_bool(value, "consent", "同意留存联系方式")
    return {"phone": phone, "name": name, "consent": consent}


def _media(payload: dict[str, Any]) -> list[dict[str, Any]]:
    value = payload.get("media")
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 20:
        raise ApiError("invalid_field", "图片信息格式不正确（最多 20 张）。")
    items = []
    for item in value:
        if not isinstance(item, dict):
            raise ApiError("invalid_field", "图片信息格式不正确。")
        entry = {"type": optional_str(item, "type", 20, "媒体类型") or "image"}
        for key in ("url", "media_id"):
            text = optional_str(item, key, 1000, key)
            if text:
                entry[key] = text
        items.append(entry)
    return items


def parse_submission(payload: dict[str, Any], max_chars: int) -> SubmissionRequest:
    """Check every field of POST /api/v1/submissions (raises ApiError)."""
    text = required_text(payload, "text", max_chars)
    kind = payload.get("kind", "concern")
    if kind is None:
        kind = "concern"
    if kind not in ("concern", "suggestion"):
        raise ApiError("invalid_field", "“kind”只能是 concern（反映问题）或 suggestion（提建议）。")
    sender = payload.get("sender")
    if sender is not None and (not isinstance(sender, (str, int)) or isinstance(sender, bool)):
        raise ApiError("invalid_field", "“sender”格式不正确。")
    sender = clean_text(str(sender))[:256] if sender is not None else None
    return SubmissionRequest(
        text=text,
        kind=kind,
        channel=channel_name(payload),
        sender=sender or None,
        place=optional_str(payload, "place", 300, "地点"),
        since_when=optional_str(payload, "since_when", 200, "时间"),
        scope=optional_str(payload, "scope", 300, "影响范围"),
        anonymous=optional_bool(payload, "anonymous", "匿名"),
        contact=_contact(payload),
        campaign=optional_str(payload, "campaign", 64, "专题"),
        media=_media(payload),
        client_ref=optional_str(payload, "client_ref", 100, "client_ref"),
    )


def _decision_label(stored: str | None) -> str:
    return {"auto_merged": "merged", "confirmed": "merged", "ask": "ask", "declined": "ask"}.get(
        stored or "new", "new"
    )


def _consented(req: SubmissionRequest) -> bool:
    """A phone or e-mail typed into the concern is kept only when the resident agreed to be called back
    and did not ask to stay anonymous."""
    return bool(req.contact and req.contact.get("consent") is True) and not req.anonymous


class IntakePipeline:
    """Blocking work for the API handlers; call from a thread executor."""

    def __init__(self, analysis: Analysis, session_factory: sessionmaker, metrics: Metrics) -> None:
        self.analysis = analysis
        self.session_factory = session_factory
        self.metrics = metrics

    # ---- responses -----------------------------------------------------------------------------
    def topic_view(self, case: Case) -> dict[str, Any] | None:
        if not case.topic:
            return None
        return {"id": case.topic, "name": self.analysis.topic_name(case.topic),
                "confidence": round(float(case.topic_confidence or 0.0), 4)}

    def _candidate_views(self, session: Session, own_case_id: int,
                         candidates: list[tuple[int, float]]) -> list[dict[str, Any]]:
        views, seen = [], {own_case_id}
        for case_id, score in candidates:
            case = session.get(Case, case_id)
            if case is None:
                continue
            case = repository.live_case(session, case)
            if case.id in seen:
                continue
            seen.add(case.id)
            # status tells the dialogue that a finished case was found: it is shown, never joined.
            # Another resident's case: only its redacted one-line subject, never its text.
            views.append({"case_number": case.number, "subject_line": safe_subject(case),
                          "supporters": int(case.supporter_count), "score": round(float(score), 4),
                          "status": case.status,
                          "status_label": CASE_STATUS_LABELS.get(case.status, case.status)})
        return views

    def _result(self, session: Session, submission: Submission, decision: str,
                candidates: list[tuple[int, float]]) -> dict[str, Any]:
        case = repository.live_case(session, session.get(Case, submission.case_id))
        shown = self._candidate_views(session, case.id if decision != "merged" else -1, candidates)
        if decision == "merged":
            shown = [c for c in shown if c["case_number"] == case.number] or shown
        return {
            "submission_id": submission.id,
            "case_number": case.number,
            "status": case.status,
            "status_label": CASE_STATUS_LABELS.get(case.status, case.status),
            "topic": self.topic_view(case),
            # "new" lists only the finished case the concern was not joined to (see _store).
            "duplicate": {"decision": decision, "candidates": shown},
        }

    def replay(self, session: Session, submission: Submission) -> dict[str, Any]:
        decision = _decision_label(submission.dedup_decision)
        candidates = []
        if submission.candidate_case_id:
            candidates = [(submission.candidate_case_id, submission.dedup_score or 0.0)]
        return self._result(session, submission, decision, candidates)

    # ---- the pipeline --------------------------------------------------------------------------
    def submit(self, req: SubmissionRequest) -> tuple[dict[str, Any], int]:
        """Store one concern; returns (response body, 201) or (earlier response, 200) on replay."""
        external_id = f"api:{req.client_ref}" if req.client_ref else None
        if external_id:
            found = self._replay_by_ref(external_id)
            if found is not None:
                return found, 200

        if not self.analysis.core_ready.is_set() and self.analysis.loading:
            self.analysis.core_ready.wait(ENCODER_WAIT_SECONDS)
        vector = self.analysis.encode(req.text)
        if vector is None:
            log.warning("no encoder available: storing the concern without a vector (encoded later)")
        topic = self.analysis.classify(req.text, vector)
        place = req.place or find_place(req.text)
        jurisdiction = jurisdiction_of(req.text, place, routing_directory())
        now = utcnow()
        sender = pseudonymise(req.channel, req.sender) if req.sender else None
        try:
            with self._session() as session:
                # Catch-up + decide + insert under one lock per area when services share the database.
                if lock_decision(session, jurisdiction):
                    self.analysis.catch_up_recent(now - CATCH_UP_WINDOW)
                dedup: DedupResult = self.analysis.decide(req.text, vector, place=place, created_at=now)
                submission, decision, shown = self._store(session, req, external_id, sender, vector, topic,
                                                          place, jurisdiction, now, dedup)
                result = self._result(session, submission, decision, shown)
                jurisdiction = submission.case.jurisdiction  # the joined case's, as the index rebuild reads it
                if vector is not None:
                    notify_stored(session, submission.id)  # other intake services index it at commit
                session.commit()
        except IntegrityError:
            # The same client_ref arrived twice at once: the other request won; answer with its result.
            if external_id:
                found = self._replay_by_ref(external_id)
                if found is not None:
                    return found, 200
            raise
        self.metrics.count_submission(decision)
        self.analysis.index_add(submission.id, vector, jurisdiction, now)
        if decision != "merged" and self.route(submission.case_id):
            # Routing may have classified and assigned the case: answer with what is stored now.
            with self._session() as session:
                result = self._result(session, session.get(Submission, submission.id), decision, shown)
        log.info("filed submission %d as %s (%s)", submission.id, result["case_number"], decision)
        return result, 201

    def _session(self) -> Session:
        return self.session_factory()

    def _replay_by_ref(self, external_id: str) -> dict[str, Any] | None:
        with self._session() as session:
            existing = repository.get_submission_by_external_id(session, external_id)
            if existing is None:
                return None
            self.metrics.count_submission(_decision_label(existing.dedup_decision), replay=True)
            return self.replay(session, existing)

    def _store(self, session: Session, req: SubmissionRequest, external_id: str | None, sender: str | None,
               vector: Any, topic: tuple[str, float] | None, place: str | None, jurisdiction: str | None,
               now: Any, dedup: DedupResult) -> tuple[Submission, str, list[tuple[int, float]]]:
        """Store the concern; returns it, the decision and the candidates to show. A best match whose
        case is finished (resolved, closed) is not joined: the concern opens a new case and the response
        lists that one case with its status, so the dialogue can say it was handled before."""
        best = dedup.candidates[0] if dedup.candidates else None
        best_case = session.get(Case, best.case_id) if best is not None else None
        decision = "new"
        shown: list[tuple[int, float]] = []
        if best is not None and best_case is not None and dedup.outcome in ("merge", "ask"):
            shown = [(c.case_id, c.score) for c in dedup.candidates]
            if not repository.accepts_supporters(repository.live_case(session, best_case)):
                shown = shown[:1]
            else:
                decision = "merged" if dedup.outcome == "merge" else "ask"
        fields = dict(
            text=redact_at_rest(req.text, keep_contact=_consented(req)), channel=req.channel, sender=sender,
            kind=req.kind, place=place,
            since_when=req.since_when, scope=req.scope, anonymous=req.anonymous, campaign=req.campaign,
            media=req.media, contact=req.contact, external_id=external_id, created_at=now,
            embedding=vector, embedding_model=self.analysis.encoder_name if vector is not None else None,
            topic=topic[0] if topic else None, topic_confidence=topic[1] if topic else None,
            dedup_score=best.score if best is not None else None, jurisdiction=jurisdiction,
        )
        try:
            submission = repository.create_submission(
                session, case_id=best.case_id if decision == "merged" else None,
                dedup_decision={"merged": "auto_merged", "ask": "ask"}.get(decision, "new"),
                candidate_case_id=best.case_id if shown else None, **fields)
        except repository.CaseClosedError:
            # Closed by staff a moment ago; the refused UPDATE wrote nothing, so file a new case instead.
            decision, shown = "new", shown[:1]
            submission = repository.create_submission(session, dedup_decision="new",
                                                      candidate_case_id=best.case_id, **fields)
        parts = place_parts(place) if place else None
        if parts is not None and parts.named():
            submission.place_parts = parts.as_dict()
            if decision != "merged":
                # A new case is routed by its own place: fill the street and community routing reads
                # (the district is the jurisdiction's, read against the routing directory).
                case = submission.case
                case.street = case.street or (parts.street or "")[:100] or None
                case.community = case.community or (parts.community or "")[:100] or None
        if topic and decision != "merged":
            review_below = float((settings().get("topics") or {}).get("review_below", 0.5))
            submission.case.needs_review = topic[1] < review_below
        return submission, decision, shown

    def route(self, case_id: int) -> bool:
        """Hand a case waiting for routing (status `received`) to routing (another part) in its own
        transaction, after the case is committed: a routing failure never undoes the intake. The case row
        is claimed first, so the intake and the routing sweep (bot.service.sweep) never route it twice.
        True when routing ran."""
        try:
            dispatch = importlib.import_module("bot.routing.dispatch")
        except ModuleNotFoundError:
            return False
        try:
            with self._session() as session:
                if not repository.claim_for_routing(session, case_id):
                    return False
                dispatch.on_case_filed(session, case_id)
                session.commit()
            return True
        except Exception:
            log.exception("routing failed for case id %d; the case is stored and can be routed again", case_id)
            return False

    # ---- repair --------------------------------------------------------------------------------
    def backfill_vectors(self, batch: int = 64) -> int:
        """Encode concerns stored while the encoder was unavailable, then index them."""
        if self.analysis.encoder is None:
            return 0
        from index.reencode import concern_text

        done = 0
        while True:
            with self._session() as session:
                pending = repository.submissions_without_vectors(session, batch)
                if not pending:
                    return done
                added = []
                # One encoder call per batch: length-sorted batches are several times faster than
                # one text at a time when an outage left many concerns behind.
                # The text import and re-encode embed (title, then text), so all three agree.
                vectors = self.analysis.encode_many([concern_text(s.text, s.title) for s in pending])
                if vectors is None:
                    return done
                for submission, vector in zip(pending, vectors, strict=True):
                    submission.embedding = vector.astype("float32").tobytes()
                    submission.embedding_model = self.analysis.encoder_name
                    added.append((submission.id, vector, submission.case.jurisdiction, submission.created_at))
                session.commit()
            for submission_id, vector, jurisdiction, created_at in added:
                self.analysis.index_add(submission_id, vector, jurisdiction, created_at)
            done += len(added)
            log.info("encoded %d stored concerns that had no vector", done)

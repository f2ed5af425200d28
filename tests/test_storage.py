"""Storage layer on SQLite and PostgreSQL: migrations, case numbers, submissions, merges, contacts."""

from __future__ import annotations

import functools
import os
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from bot.config import settings
from bot.storage import db, repository
from bot.storage.case_numbers import normalize_number
from bot.storage.models import Case, CaseEvent, Contact, Submission

POSTGRES_URL = os.environ.get("SHANGLIANG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@functools.lru_cache(maxsize=1)
def _postgres_reachable() -> str | None:
    """None when reachable, else the reason to skip."""
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, or a private schema in the PostgreSQL test database."""
    monkeypatch.setenv("SHANGLIANG_VAR", str(tmp_path / "var"))
    settings.cache_clear()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'test.db'}"
        db.upgrade(url)
        yield url
        db.dispose_engines()
    else:
        reason = _postgres_reachable()
        if reason:
            pytest.skip(reason)
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        try:
            db.upgrade(url)
            yield url
        finally:
            db.dispose_engines()
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    settings.cache_clear()


NUMBER = re.compile(r"^SL\d{4}-\d{6}$")


def test_upgrade_is_idempotent_and_creates_tables(database_url: str) -> None:
    db.upgrade(database_url)  # second run: nothing to do, no error
    names = set(sa.inspect(db.get_engine(database_url)).get_table_names())
    assert {"cases", "submissions", "contacts", "case_events", "handoffs", "case_counters"} <= names
    with db.session_scope(database_url) as session:
        heads = {r[0] for r in session.execute(sa.text("select version_num from alembic_version"))}
    # Every branch (other parts add revisions on top of 0001_initial) is applied.
    script = ScriptDirectory.from_config(db.alembic_config(database_url))
    assert heads == set(script.get_heads())
    assert "0001_initial" in {r.revision for r in script.walk_revisions()}


def test_sqlite_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    try:
        with db.get_engine(url).connect() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        db.dispose_engines()


def test_create_submission_opens_numbered_case(database_url: str) -> None:
    vector = np.linspace(-1, 1, 8).astype(np.float32)
    with db.session_scope(database_url) as session:
        sub = repository.create_submission(
            session, text="你好，我要反映一下。幸福小区3号楼门口的路灯坏了三个月了，晚上出门很不安全。",
            channel="web", sender="p" * 32, place="幸福小区3号楼", embedding=vector, embedding_model="fake",
            created_at=datetime(2026, 3, 1, 8, 0),
        )
        sub_id = sub.id
    with db.session_scope(database_url) as session:
        stored = session.get(Submission, sub_id)
        case = stored.case
        assert case.number == "SL2026-000001"
        assert case.title == "幸福小区3号楼门口的路灯坏了三个月了"
        assert case.summary.startswith("幸福小区3号楼门口的路灯坏了三个月了")
        assert stored.text.startswith("你好，我要反映一下。")  # the full text is kept
        assert case.status == "received" and case.supporter_count == 1
        np.testing.assert_array_equal(repository.vector_of(stored), vector)
        assert [e.kind for e in case.events] == ["created"]


def test_case_numbers_count_per_year_in_china_time(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        late = repository.create_submission(session, text="去年最后一天的反映", created_at=datetime(2025, 12, 31, 15, 59))
        new_year = repository.create_submission(session, text="北京时间新年第一条", created_at=datetime(2025, 12, 31, 16, 1))
        second = repository.create_submission(session, text="新年第二条反映", created_at=datetime(2026, 1, 2))
        numbers = [late.case.number, new_year.case.number, second.case.number]
    assert numbers == ["SL2025-000001", "SL2026-000001", "SL2026-000002"]


def test_case_numbers_unique_under_concurrency(database_url: str) -> None:
    """Eight threads, each filing cases in its own transaction: every number distinct, none skipped."""
    errors: list[BaseException] = []
    numbers: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(5):
                with db.session_scope(database_url) as session:
                    sub = repository.create_submission(session, text=f"并发测试第{n}组第{i}条：楼道灯不亮")
                    number = sub.case.number
                with lock:
                    numbers.append(number)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(numbers) == 40 and len(set(numbers)) == 40
    assert all(NUMBER.match(n) for n in numbers)
    serials = sorted(int(n.split("-")[1]) for n in numbers)
    assert serials == list(range(1, 41))


def test_contact_only_with_consent(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        with_consent = repository.create_submission(
            session, text="小区垃圾没人清运", contact={"phone": "13800138000", "name": "王女士", "consent": True})
        without = repository.create_submission(
            session, text="路口红绿灯坏了", contact={"phone": "13900139000", "consent": False})
        ids = (with_consent.id, without.id)
    with db.session_scope(database_url) as session:
        contacts = session.execute(sa.select(Contact)).scalars().all()
        assert [(c.submission_id, c.phone, c.consent) for c in contacts] == [(ids[0], "13800138000", True)]
        # The phone number never lands in the submission or case rows.
        for sub in session.execute(sa.select(Submission)).scalars():
            assert "138" not in (sub.text + str(sub.place)) and "139" not in sub.text


def test_attach_to_existing_case_counts_supporters(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        first = repository.create_submission(session, text="东门外的下水道堵了，污水漫到路上")
        second = repository.create_submission(session, text="东门下水道又堵了", case_id=first.case_id)
        assert second.case_id == first.case_id
        assert second.dedup_decision == "auto_merged"
        case_id = first.case_id
    with db.session_scope(database_url) as session:
        case = session.get(Case, case_id)
        assert case.supporter_count == 2
        assert session.execute(sa.select(sa.func.count(Case.id))).scalar_one() == 1


def test_merge_submission_moves_it_and_closes_provisional_case(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        target = repository.create_submission(session, text="幸福路的路灯坏了一个月")
        other = repository.create_submission(session, text="幸福路那边晚上路灯不亮")
        target_case, provisional = target.case_id, other.case_id
        merged_into = repository.merge_submission(session, other.id, target_case)
        assert merged_into.id == target_case
    with db.session_scope(database_url) as session:
        moved = session.execute(sa.select(Submission).where(Submission.case_id == target_case)).scalars().all()
        assert len(moved) == 2
        old = session.get(Case, provisional)
        assert old.status == "merged" and old.merged_into_id == target_case
        assert session.get(Case, target_case).supporter_count == 2
        # Merging again into the merged case follows the link to the live one.
        third = repository.create_submission(session, text="路灯问题我也遇到了", case_id=provisional)
        assert third.case_id == target_case
        assert [e.kind for e in old.events][-1] == "merged"


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_a_finished_case_takes_no_supporters(database_url: str, status: str) -> None:
    with db.session_scope(database_url) as session:
        done = repository.create_submission(session, text="幸福路的路灯坏了一个月")
        merged = repository.create_submission(session, text="幸福路那边晚上路灯不亮")
        provisional = merged.case_id
        repository.merge_submission(session, merged.id, done.case_id)  # `provisional` now points at `done`
        repository.update_case(session, session.get(Case, done.case_id), status=status, actor="staff")
        later = repository.create_submission(session, text="幸福路路灯又坏了")
        ids = (done.case_id, provisional, later.id)
    with db.session_scope(database_url) as session:
        done_case = session.get(Case, ids[0])
        assert not repository.accepts_supporters(done_case)
        assert session.get(Case, provisional).status == "merged"
        for case_id in (ids[0], provisional):  # directly, or through the merged case's link
            with pytest.raises(repository.CaseClosedError):
                repository.create_submission(session, text="路灯问题我也遇到了", case_id=case_id)
        with pytest.raises(repository.CaseClosedError):
            repository.merge_submission(session, ids[2], ids[0])
    with db.session_scope(database_url) as session:
        assert session.get(Case, ids[0]).supporter_count == 2
        assert session.get(Submission, ids[2]).case_id != ids[0]  # still its own case
        assert session.execute(sa.select(sa.func.count(Submission.id))).scalar_one() == 3


def test_claim_for_routing_only_while_received(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        case_id = repository.create_submission(session, text="公园厕所太少").case_id
    with db.session_scope(database_url) as session:
        assert repository.claim_for_routing(session, case_id)
        session.get(Case, case_id).status = "assigned"
    with db.session_scope(database_url) as session:
        assert not repository.claim_for_routing(session, case_id)
        assert session.get(Case, case_id).status == "assigned"


def test_keep_submission_records_the_choice(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        sub = repository.create_submission(session, text="公园健身器材坏了", dedup_decision="ask")
        repository.keep_submission(session, sub.id)
        assert session.get(Submission, sub.id).dedup_decision == "declined"


@pytest.mark.parametrize("raw", ["SL2026-000007", "sl2026-000007", " SL 2026-000007 ", "ｓｌ２０２６－０００００７",
                                 "SL2026000007", "sl2026-7"])
def test_case_number_lookup_tolerates_forms(database_url: str, raw: str) -> None:
    with db.session_scope(database_url) as session:
        for i in range(7):
            repository.create_submission(session, text=f"第{i}条测试反映内容", created_at=datetime(2026, 5, 1))
    with db.session_scope(database_url) as session:
        case = repository.get_case_by_number(session, raw)
        assert case is not None and case.number == "SL2026-000007"
        assert repository.get_case_by_number(session, "SL2026-999999") is None
        assert repository.get_case_by_number(session, "不是编号") is None


def test_normalize_number_leaves_garbage_alone() -> None:
    assert normalize_number("hello") == "HELLO"
    assert normalize_number("") == ""


def test_cases_for_sender_newest_first_and_update_case(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        a = repository.create_submission(session, text="第一件事：楼下噪音", sender="alice", created_at=datetime(2026, 1, 1))
        b = repository.create_submission(session, text="第二件事：停车难", sender="alice", created_at=datetime(2026, 2, 1))
        repository.create_submission(session, text="别人的事", sender="bob")
        cases = repository.cases_for_sender(session, "alice")
        assert [c.id for c in cases] == [b.case_id, a.case_id]
        case = cases[0]
        repository.update_case(session, case, status="accepted", note="李委员已接单", actor="李委员")
        event = repository.last_update(session, case)
        assert (event.kind, event.status, event.note) == ("status", "accepted", "李委员已接单")
        with pytest.raises(ValueError):
            repository.update_case(session, case, status="nonsense")
        kinds = session.execute(sa.select(CaseEvent.kind).where(CaseEvent.case_id == case.id)).scalars().all()
        assert kinds == ["created", "status"]


def test_handoff_and_counts(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        handoff = repository.create_handoff(session, channel="web", sender="x" * 32, text="我要找人工")
        assert handoff.id and handoff.status == "open"
        repository.create_submission(session, text="一条反映")
        totals = repository.counts(session)
    assert totals == {"submissions": 1, "cases_by_status": {"received": 1}}


def test_submissions_without_vectors(database_url: str) -> None:
    with db.session_scope(database_url) as session:
        repository.create_submission(session, text="没有向量的反映")
        repository.create_submission(session, text="有向量的反映", embedding=np.ones(4, np.float32))
        pending = repository.submissions_without_vectors(session)
        assert [s.text for s in pending] == ["没有向量的反映"]

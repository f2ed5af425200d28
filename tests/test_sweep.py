"""The routing sweep: cases left unrouted (crash between the case commit and routing) are routed once,
never twice, by one or by several sweeps at once — on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy.orm import sessionmaker

from bot.routing.dispatch import current_directory
from bot.routing.models import OutboxMessage, Route
from bot.service.analysis import Analysis
from bot.service.intake import IntakePipeline
from bot.service.metrics import Metrics
from bot.service.sweep import RoutingSweep, SweepPolicy
from bot.storage import repository
from bot.storage.models import Case, CaseEvent, utcnow
from bot.topics.taxonomy import default_taxonomy

# Routed by topic (urban_rural committee) and by area: 东湖区 / 清河街道 / 柳岸社区 members in routing.yml.
PLACE = "东湖区清河街道柳岸社区"
RECIPIENTS = {"m_zhou_jian", "m_lin_qing", "m_lu_gong"}


def _pipeline(factory: sessionmaker) -> IntakePipeline:
    return IntakePipeline(Analysis(factory), factory, Metrics())


def _file_case(factory: sessionmaker, text: str, *, age_seconds: float, source: str = "live") -> int:
    """A case stored the way the intake stores it, but never routed (the process "crashed")."""
    with factory() as s:
        sub = repository.create_submission(
            s, text=text, place=PLACE, topic="urban_construction", topic_confidence=0.9, source=source,
            created_at=utcnow() - timedelta(seconds=age_seconds))
        s.commit()
        return sub.case_id


def _delivery_state(factory: sessionmaker, case_id: int) -> tuple[str, list[str], list[str], int]:
    """(status, routed member ids, outbox keys, routed events) of one case."""
    with factory() as s:
        status = s.get(Case, case_id).status
        members = sorted(m for (m,) in s.query(Route.member_id).filter(Route.case_id == case_id))
        keys = sorted(k for (k,) in s.query(OutboxMessage.key).filter(OutboxMessage.case_id == case_id))
        events = s.query(func.count(CaseEvent.id)).filter(CaseEvent.case_id == case_id,
                                                          CaseEvent.kind == "routed").scalar()
    return status, members, keys, int(events)


def test_sweep_routes_a_case_left_unrouted_exactly_once(db_factory: sessionmaker) -> None:
    stale = _file_case(db_factory, "柳岸社区门口的路灯坏了一个月，晚上很黑", age_seconds=600)
    fresh = _file_case(db_factory, "柳岸社区健身器材坏了", age_seconds=0)  # its own request still routes it
    imported = _file_case(db_factory, "历史留言：路灯坏了", age_seconds=86400, source="import")
    sweep = RoutingSweep(_pipeline(db_factory), SweepPolicy(grace_seconds=60))

    assert sweep.run_once() == 1
    status, members, keys, events = _delivery_state(db_factory, stale)
    assert status == "assigned" and set(members) == RECIPIENTS and events == 1
    assert len(keys) == len(RECIPIENTS) == len(set(keys))  # one report per recipient channel
    assert _delivery_state(db_factory, fresh) == ("received", [], [], 0)
    assert _delivery_state(db_factory, imported) == ("received", [], [], 0)  # history is never routed

    assert sweep.run_once() == 0  # a second pass sends nothing again
    assert _delivery_state(db_factory, stale) == (status, members, keys, events)

    later = utcnow() + timedelta(seconds=120)  # the fresh case is past its grace period now
    assert sweep.run_once(now=later) == 1
    assert _delivery_state(db_factory, fresh)[0] == "assigned"
    assert sweep.run_once(now=later) == 0
    assert _delivery_state(db_factory, imported) == ("received", [], [], 0)
    assert _delivery_state(db_factory, stale) == (status, members, keys, events)


def test_two_sweeps_at_once_route_each_case_once(db_factory: sessionmaker,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Two service processes start together after a crash: each case is claimed by one of them."""
    caplog.set_level(logging.INFO)
    with db_factory() as s:  # as after the first routing: the directory is in the database already
        current_directory(s, default_taxonomy())
        s.commit()
    cases = [_file_case(db_factory, f"柳岸社区{i}号楼楼道灯坏了", age_seconds=600) for i in range(1, 6)]
    sweeps = [RoutingSweep(_pipeline(db_factory), SweepPolicy(grace_seconds=60, batch=2)) for _ in range(2)]
    barrier = threading.Barrier(len(sweeps))
    routed: list[int] = []

    def run(sweep: RoutingSweep) -> None:
        barrier.wait()
        routed.append(sweep.run_once())

    threads = [threading.Thread(target=run, args=(sweep,)) for sweep in sweeps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(routed) == 2 and sum(routed) == len(cases)
    for case_id in cases:
        status, members, keys, events = _delivery_state(db_factory, case_id)
        assert status == "assigned" and set(members) == RECIPIENTS and events == 1
        assert len(keys) == len(RECIPIENTS)
    assert "routing failed" not in caplog.text  # no router lost a race on a unique constraint
    assert sum(sweep.run_once() for sweep in sweeps) == 0


def test_intake_routing_and_sweep_never_both_route(db_factory: sessionmaker) -> None:
    """The request that filed a case and a sweep racing for it: one routes it, the other finds it done."""
    case_id = _file_case(db_factory, "柳岸社区门口的路灯坏了", age_seconds=600)
    pipelines = [_pipeline(db_factory) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def route(pipeline: IntakePipeline) -> None:
        barrier.wait()
        results.append(pipeline.route(case_id))

    threads = [threading.Thread(target=route, args=(p,)) for p in pipelines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [False, True]
    status, members, keys, events = _delivery_state(db_factory, case_id)
    assert status == "assigned" and set(members) == RECIPIENTS and len(keys) == len(RECIPIENTS) and events == 1


def test_two_routers_on_a_fresh_database_both_route(db_factory: sessionmaker,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The intake and a sweep route different cases at the same moment while the member directory is not
    stored yet: both store it, neither fails on a duplicate key, both cases are routed right away."""
    cases = [_file_case(db_factory, f"柳岸社区{i}号楼门口的路灯坏了", age_seconds=600) for i in (1, 2)]
    pipelines = [_pipeline(db_factory) for _ in cases]
    barrier = threading.Barrier(len(cases))
    results: list[bool] = []

    def route(pipeline: IntakePipeline, case_id: int) -> None:
        barrier.wait()
        results.append(pipeline.route(case_id))

    threads = [threading.Thread(target=route, args=pair) for pair in zip(pipelines, cases, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert "routing failed" not in caplog.text
    assert results == [True, True]
    for case_id in cases:
        status, members, keys, events = _delivery_state(db_factory, case_id)
        assert status == "assigned" and set(members) == RECIPIENTS and len(keys) == len(RECIPIENTS)


def test_sweep_policy_from_intake_yml() -> None:
    from bot.config import settings

    policy = SweepPolicy.from_settings(settings())
    assert policy.grace_seconds == 60 and policy.interval_seconds == 60
    assert SweepPolicy.from_settings({"routing": {"sweep": {"grace_seconds": 5}}}).grace_seconds == 5

"""Delivery: each backend against a real local peer, retries with backoff, recovery, dead-letter,
re-claiming stale leases, concurrent claims, and the daily digest — on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from sqlalchemy.orm import sessionmaker

import bot.routing.models  # noqa: F401
from bot.delivery import outbox
from bot.delivery.backends import DeliveryError
from bot.delivery.backends.email import EmailBackend
from bot.delivery.backends.file import FileBackend
from bot.delivery.backends.webhook import WebhookBackend, verify
from bot.delivery.backends.wecom import WeComRobotBackend
from bot.delivery.digest import enqueue_digests
from bot.delivery.worker import OutboxWorker
from bot.routing.dispatch import on_case_filed
from bot.routing.models import OutboxMessage
from bot.storage import repository
from bot.storage.models import Case, utcnow

SECRET = "test-secret"


def free_port() -> int:
    """A port nothing listens on right now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def factory(db_factory: sessionmaker) -> sessionmaker:
    """Every test here runs on SQLite and again on PostgreSQL (skipped when it does not answer)."""
    return db_factory


class Clock:
    """Time the worker sees; tests move it forward instead of sleeping through backoff."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 8, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _enqueue(factory, backend: str, target: dict, key: str = "case:1:m:0", clock: Clock | None = None) -> int:
    with factory() as s:
        row = outbox.enqueue(s, key=key, backend=backend, target=target, subject="【社情民意】测试",
                             body="# 社情民意信息：路灯坏了\n\n- **反映人数**：3 人", payload={"case_number": "SL2026-000001"},
                             member_id="m_test")
        if clock:
            row.next_attempt_at = clock.now
        s.commit()
        return row.id


def _status(factory, row_id: int) -> OutboxMessage:
    with factory() as s:
        return s.get(OutboxMessage, row_id)


class Peer:
    """A local HTTP endpoint that can be switched down (HTTP 503) and up again."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.up = True
        self.received: list[tuple[dict, dict]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.up:
            return web.Response(status=503, text="maintenance")
        self.received.append((dict(request.headers), json.loads(body)))
        if self.kind == "webhook":
            assert verify(SECRET, body, request.headers.get("X-Shangliang-Signature", ""))
            return web.json_response({"ok": True})
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@pytest.fixture()
async def peer_server():
    runners = []

    async def start(kind: str) -> tuple[Peer, str]:
        peer = Peer(kind)
        app = web.Application()
        app.router.add_post("/hook", peer.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]
        return peer, f"http://127.0.0.1:{port}/hook"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_file_backend_writes_markdown(factory, var_dir: Path) -> None:
    row_id = _enqueue(factory, "file", {})
    counts = await OutboxWorker(factory, {"file": FileBackend()}).run_once()
    assert counts["sent"] == 1
    files = list((var_dir / "outbox" / "m_test").glob("*.md"))
    assert len(files) == 1 and "路灯坏了" in files[0].read_text(encoding="utf-8")
    assert _status(factory, row_id).status == "sent"


async def test_webhook_signed_json(factory, peer_server) -> None:
    peer, url = await peer_server("webhook")
    row_id = _enqueue(factory, "webhook", {"url": url, "secret": SECRET})
    counts = await OutboxWorker(factory, {"webhook": WebhookBackend()}).run_once()
    assert counts["sent"] == 1
    headers, payload = peer.received[0]
    assert headers["X-Shangliang-Delivery"] == "case:1:m:0"
    assert headers["X-Shangliang-Signature"].startswith("sha256=")
    assert payload["report"] == {"case_number": "SL2026-000001"}
    assert _status(factory, row_id).status == "sent"


async def test_wecom_robot_markdown(factory, peer_server) -> None:
    peer, url = await peer_server("wecom")
    _enqueue(factory, "wecom", {"url": url})
    counts = await OutboxWorker(factory, {"wecom": WeComRobotBackend()}).run_once()
    assert counts["sent"] == 1
    _, payload = peer.received[0]
    assert payload["msgtype"] == "markdown"
    assert "路灯坏了" in payload["markdown"]["content"]


async def test_smtp_email(factory) -> None:
    class Inbox:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook name)
            self.messages.append(envelope)
            return "250 OK"

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        backend = EmailBackend({"host": "127.0.0.1", "port": port, "from": "bot@example.org"})
        _enqueue(factory, "email", {"to": "member@example.org"})
        counts = await OutboxWorker(factory, {"email": backend}).run_once()
    finally:
        controller.stop()
    assert counts["sent"] == 1
    envelope = inbox.messages[0]
    assert envelope.rcpt_tos == ["member@example.org"]
    mail = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
    assert mail["Subject"] == "【社情民意】测试"
    assert "路灯坏了" in mail.get_content()


async def test_endpoint_down_retries_with_backoff_then_recovers(factory, peer_server) -> None:
    peer, url = await peer_server("webhook")
    peer.up = False
    clock = Clock()
    policy = outbox.RetryPolicy(max_attempts=5, base_seconds=10, max_seconds=1000, lease_seconds=60)
    worker = OutboxWorker(factory, {"webhook": WebhookBackend(timeout=5)}, policy=policy, clock=clock)
    row_id = _enqueue(factory, "webhook", {"url": url, "secret": SECRET}, clock=clock)

    delays = []
    for attempt in range(1, 4):
        counts = await worker.run_once()
        assert counts["retry"] == 1
        row = _status(factory, row_id)
        assert row.status == "pending" and row.attempts == attempt and "503" in row.last_error
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        assert (await worker.run_once()) == {}  # not due yet: nothing is sent early
        clock.advance(delays[-1])
    assert delays == [10, 20, 40]  # exponential backoff

    peer.up = True
    counts = await worker.run_once()
    assert counts["sent"] == 1
    assert _status(factory, row_id).status == "sent"
    assert len(peer.received) == 1


async def test_dead_letter_after_max_attempts(factory) -> None:
    clock = Clock()
    policy = outbox.RetryPolicy(max_attempts=3, base_seconds=1, max_seconds=10, lease_seconds=60)
    # Nothing listens on this port: every attempt is refused.
    worker = OutboxWorker(factory, {"webhook": WebhookBackend(timeout=2)}, policy=policy, clock=clock)
    row_id = _enqueue(factory, "webhook", {"url": f"http://127.0.0.1:{free_port()}/hook"}, clock=clock)
    outcomes = []
    for _ in range(3):
        counts = await worker.run_once()
        outcomes.append(dict(counts))
        clock.advance(60)
    assert outcomes == [{"retry": 1}, {"retry": 1}, {"dead": 1}]
    row = _status(factory, row_id)
    assert row.status == "dead" and row.attempts == 3
    assert (await worker.run_once()) == {}  # dead letters stay put
    with factory() as s:
        assert outbox.requeue_dead(s) == 1
    assert _status(factory, row_id).status == "pending"


async def test_stale_claim_is_picked_up_again(factory, peer_server) -> None:
    """A worker that died after claiming (status `sending`) loses nothing: after the lease, it is re-sent."""
    peer, url = await peer_server("webhook")
    clock = Clock()
    policy = outbox.RetryPolicy(max_attempts=5, base_seconds=10, lease_seconds=120)
    row_id = _enqueue(factory, "webhook", {"url": url, "secret": SECRET}, clock=clock)
    with factory() as s:
        assert outbox.claim(s, 10, policy, now=clock.now) == [row_id]  # ...and then the process "dies"
    worker = OutboxWorker(factory, {"webhook": WebhookBackend()}, policy=policy, clock=clock)
    assert (await worker.run_once()) == {}  # lease still held
    clock.advance(121)
    assert (await worker.run_once())["sent"] == 1
    row = _status(factory, row_id)
    assert row.status == "sent" and row.attempts == 2


class Gate:
    """A backend whose send waits until released, then succeeds or raises: a worker stuck past its lease."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message) -> None:
        self.entered.set()
        await self.release.wait()
        if self.fail:
            raise DeliveryError("timed out after the lease expired")


async def test_stale_worker_cannot_overwrite_the_outcome_of_the_worker_that_reclaimed(factory) -> None:
    """Worker A's lease expires mid-send and worker B re-claims the row. A's late fail() must not undo B's
    `sent`, and A's late complete() must not mark sent a row B is still sending (nor clear B's lease)."""
    clock = Clock()
    policy = outbox.RetryPolicy(max_attempts=5, base_seconds=10, lease_seconds=60)
    gates: list[Gate] = []
    tasks: list[asyncio.Future] = []

    def start(gate: Gate) -> asyncio.Future:
        gates.append(gate)
        tasks.append(asyncio.ensure_future(OutboxWorker(factory, {"gate": gate}, policy=policy,
                                                        clock=clock).run_once()))
        return tasks[-1]

    try:
        # Late fail: B has sent the message meanwhile; A's failure changes nothing.
        row_id = _enqueue(factory, "gate", {}, key="case:1:m:0", clock=clock)
        slow = Gate(fail=True)
        a = start(slow)
        await slow.entered.wait()
        clock.advance(61)
        b = OutboxWorker(factory, {"gate": FileBackend()}, policy=policy, clock=clock)
        assert (await b.run_once()) == {"sent": 1}
        sent = _status(factory, row_id)
        assert sent.status == "sent" and sent.attempts == 2
        slow.release.set()
        late = await a
        row = _status(factory, row_id)
        assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 2, sent.sent_at, None)
        assert late == {"lost": 1}

        # Late complete: B is still sending when A's send returns; B's lease and B's outcome stand.
        row_id = _enqueue(factory, "gate", {}, key="case:2:m:0", clock=clock)
        slow, again = Gate(fail=False), Gate(fail=True)
        a = start(slow)
        await slow.entered.wait()
        clock.advance(61)
        b = start(again)
        await again.entered.wait()
        b_lease = _status(factory, row_id).lease_until
        slow.release.set()
        late = await a
        row = _status(factory, row_id)
        assert (row.status, row.attempts, row.lease_until, row.sent_at) == ("sending", 2, b_lease, None)
        assert late == {"lost": 1}
        again.release.set()
        assert (await b) == {"retry": 1}
        row = _status(factory, row_id)
        assert (row.status, row.attempts, row.lease_until) == ("pending", 2, None)
        assert "after the lease expired" in row.last_error
    finally:  # a failed assertion must not leave a worker (and its open transaction) waiting forever
        for gate in gates:
            gate.release.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_complete_and_fail_only_under_the_callers_lease(factory, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    policy = outbox.RetryPolicy(max_attempts=5, base_seconds=10, lease_seconds=60)
    row_id = _enqueue(factory, "file", {}, clock=clock)
    with factory() as a, factory() as b:
        [lease_a] = outbox.claim_leases(a, 10, policy, now=clock.now)
        clock.advance(61)  # A stalls past its lease; B re-claims the row and sends it
        [lease_b] = outbox.claim_leases(b, 10, policy, now=clock.now)
        assert (lease_a.row_id, lease_a.attempt, lease_b.attempt) == (row_id, 1, 2)
        assert outbox.complete(b, lease_b, now=clock.now) is True
        caplog.clear()
        assert outbox.fail(a, lease_a, "late timeout", policy, now=clock.now) is None
        assert outbox.complete(a, lease_a, now=clock.now) is False
        assert outbox.complete(b, lease_b, now=clock.now) is False  # settled once, not twice
    row = _status(factory, row_id)
    assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 2, clock.now, None)
    lost = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(lost) == 3 and all("no longer holds the lease" in r.getMessage() for r in lost)

    # The normal path: the holder of the lease records a failure, then the retry is sent.
    row_id = _enqueue(factory, "file", {}, key="case:2:m:0", clock=clock)
    with factory() as s:
        [lease] = outbox.claim_leases(s, 10, policy, now=clock.now)
        assert outbox.fail(s, lease, "503", policy, now=clock.now) == "pending"
        clock.advance(10)
        [lease] = outbox.claim_leases(s, 10, policy, now=clock.now)
        assert outbox.complete(s, lease, now=clock.now) is True
    row = _status(factory, row_id)
    assert (row.status, row.attempts, row.lease_until, row.last_error) == ("sent", 2, None, None)


async def test_two_workers_never_send_the_same_message_twice(factory, peer_server) -> None:
    peer, url = await peer_server("webhook")
    for i in range(6):
        _enqueue(factory, "webhook", {"url": url, "secret": SECRET}, key=f"case:{i}:m:0")
    workers = [OutboxWorker(factory, {"webhook": WebhookBackend()}, batch=6) for _ in range(2)]
    results = await asyncio.gather(*(w.run_once() for w in workers))
    assert sum(r["sent"] for r in results) == 6
    keys = [headers["X-Shangliang-Delivery"] for headers, _ in peer.received]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 6


async def test_workers_in_parallel_threads_send_each_message_once(factory, peer_server) -> None:
    """Two worker processes, modelled as threads with their own event loop and database connections:
    their claims really overlap in the database."""
    peer, url = await peer_server("webhook")
    for i in range(10):
        _enqueue(factory, "webhook", {"url": url, "secret": SECRET}, key=f"case:{i}:m:0")
    workers = [OutboxWorker(factory, {"webhook": WebhookBackend()}, batch=10) for _ in range(3)]
    results = await asyncio.gather(*(asyncio.to_thread(asyncio.run, w.run_once()) for w in workers))
    for _ in range(3):  # a worker that found every row busy leaves it to the next pass
        results.append(await workers[0].run_once())
    assert sum(r["sent"] for r in results) == 10
    keys = [headers["X-Shangliang-Delivery"] for headers, _ in peer.received]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 10


def _race(factory, threads: int, policy: outbox.RetryPolicy, now: datetime) -> list[int]:
    """`threads` claimers started together, each claiming two rows at a time until nothing is due."""
    barrier = threading.Barrier(threads)
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer() -> None:
        barrier.wait()
        idle = 0
        while idle < 3:
            with factory() as s:
                ids = outbox.claim(s, 2, policy, now=now)
            with lock:
                claimed.extend(ids)
            idle = 0 if ids else idle + 1

    pool = [threading.Thread(target=claimer) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in pool)
    return claimed


def test_concurrent_claims_take_each_row_once_and_expired_leases_once_again(factory) -> None:
    clock = Clock()
    policy = outbox.RetryPolicy(max_attempts=5, base_seconds=10, lease_seconds=120)
    ids = [_enqueue(factory, "file", {}, key=f"case:{i}:m:0", clock=clock) for i in range(12)]
    first = _race(factory, 4, policy, clock.now)
    assert sorted(first) == ids  # every row claimed, none twice
    with factory() as s:
        assert outbox.claim(s, 50, policy, now=clock.now) == []  # leases still held
    clock.advance(121)  # every claimer "died": the leases expire and the rows are due again
    second = _race(factory, 4, policy, clock.now)
    assert sorted(second) == ids
    with factory() as s:
        rows = s.query(OutboxMessage).filter(OutboxMessage.id.in_(ids)).all()
        assert {(r.status, r.attempts) for r in rows} == {("sending", 2)}


def test_daily_digest_new_grown_and_overdue(factory) -> None:
    s = factory()
    day1 = utcnow() + timedelta(minutes=1)  # routes are stamped with the real clock
    a = repository.create_submission(s, text="东湖区路灯坏了，希望修好", place="东湖区", topic="urban_construction",
                                     topic_confidence=0.9)
    b = repository.create_submission(s, text="东湖区公交站没有雨棚", place="东湖区", topic="transport",
                                     topic_confidence=0.9)
    s.commit()
    on_case_filed(s, a.case_id)
    on_case_filed(s, b.case_id)
    s.commit()
    first = enqueue_digests(s, now=day1)
    s.commit()
    assert first["m_zhou_jian"] == 2  # two new cases for the district's member

    # Next day: one case gains a supporter, the other passes its due date, nothing new.
    case_a, case_b = s.get(Case, a.case_id), s.get(Case, b.case_id)
    case_a.supporter_count += 2
    case_b.due_at = day1 + timedelta(hours=12)
    s.commit()
    second = enqueue_digests(s, now=day1 + timedelta(days=1))
    s.commit()
    assert second["m_zhou_jian"] == 2
    digest = s.query(OutboxMessage).filter(OutboxMessage.key.like(f"digest:m_zhou_jian:{day1 + timedelta(days=1):%Y%m%d}%")).one()
    assert [c["number"] for c in digest.payload["grown"]] == [case_a.number]
    assert digest.payload["grown"][0]["before"] == 1
    assert [c["number"] for c in digest.payload["overdue"]] == [case_b.number]
    assert digest.payload["new"] == []
    assert "反映人数增加" in digest.body and "已超过办理期限" in digest.body
    s.close()

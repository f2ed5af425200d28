"""`shangliang reindex --reencode`: stored vectors of another encoder variant are re-encoded in committed
batches (resumable), the index is rebuilt from them, and the intake service warns at start-up while any
are left. Real SQLite databases, the API tests' fake encoder ("fake-bigram"), no model."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.orm import Session, sessionmaker

from bot.config import settings
from bot.storage import repository
from bot.storage.db import dispose_engines, session_scope
from bot.storage.models import Submission
from index.reencode import COMMAND, NO_VECTOR, concern_text, reencode_outdated, vectors_by_model
from index.vector_index import VectorIndex
from tests.test_api import FakeEncoder, _install_router

OLD = "multilingual-e5-small"  # e.g. vectors stored before the token limit and int8 entered the name
TEXTS = [
    "A5区东澜湾社区旁边的搅拌站半夜施工，噪音扰民。",
    "A3区梅溪湖路12号楼电梯经常坏，物业不修。",
    "丽发新城小区门口路灯不亮，晚上走路很危险。",
    "幸福小区3号楼门口的垃圾站夏天很臭。",
    "星沙大道公交站台没有遮雨棚，下雨天等车全身湿透。",
]


def old_vector(seed: int, dim: int = 16) -> np.ndarray:
    """What another encoder variant stored: other values, possibly another dimension."""
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def fresh(text: str, title: str | None = None) -> bytes:
    """The bytes the current (fake) encoder gives for a stored concern."""
    return FakeEncoder().encode([concern_text(text, title)])[0].tobytes()


class FailingEncoder(FakeEncoder):
    """Raises on its `fail_on`-th call: a run that stops after the earlier batches were committed."""

    def __init__(self, fail_on: int = 2) -> None:
        self.calls = 0
        self.fail_on = fail_on

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("encoder died")
        return super().encode(texts)


def add_rows(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    ids = [repository.create_submission(session, **row).id for row in rows]
    session.commit()
    return ids


def stored(factory: Any) -> dict[int, tuple[bytes | None, str | None]]:
    with factory() as session:
        return {s.id: (s.embedding, s.embedding_model) for s in session.query(Submission)}


# --------------------------------------------------------------------------- library
def test_outdated_rows_get_fresh_vectors_and_current_rows_stay(db_factory: sessionmaker) -> None:
    current_vector = old_vector(99, FakeEncoder.dim)  # not what the fake gives: proves the row is untouched
    with db_factory() as session:
        old_ids = add_rows(session, [
            {"text": TEXTS[0], "embedding": old_vector(0), "embedding_model": OLD},
            {"text": TEXTS[1], "embedding": old_vector(1), "embedding_model": OLD},
            # An imported message: its vector was made from title and text (`shangliang import`).
            {"text": TEXTS[2], "title": "路灯不亮", "source": "import", "embedding": old_vector(2),
             "embedding_model": OLD},
            {"text": TEXTS[3]},  # stored while the encoder was unavailable
        ])
        (current_id,) = add_rows(session, [
            {"text": TEXTS[4], "embedding": current_vector, "embedding_model": FakeEncoder.name}])
    assert vectors_by_model(db_factory) == {OLD: 3, NO_VECTOR: 1, FakeEncoder.name: 1}

    result = reencode_outdated(db_factory, FakeEncoder(), batch_size=2, progress=False)

    assert (result.reencoded, result.skipped) == (4, 1)
    assert result.by_model == {OLD: 3, NO_VECTOR: 1}
    rows = stored(db_factory)
    assert rows[current_id] == (current_vector.tobytes(), FakeEncoder.name)
    # Live concerns: the intake service encodes the text alone; imports: "title。text".
    assert rows[old_ids[0]] == (FakeEncoder().encode([TEXTS[0]])[0].tobytes(), FakeEncoder.name)
    assert rows[old_ids[2]] == (FakeEncoder().encode([f"路灯不亮。{TEXTS[2]}"])[0].tobytes(), FakeEncoder.name)
    assert all(rows[i] == (fresh(t, h), FakeEncoder.name)
               for i, t, h in zip(old_ids, TEXTS, [None, None, "路灯不亮", None], strict=False))

    again = reencode_outdated(db_factory, FakeEncoder(), progress=False)
    assert (again.reencoded, again.skipped, again.by_model) == (0, 5, {})
    assert stored(db_factory) == rows


def test_interrupted_run_resumes_where_it_stopped(db_factory: sessionmaker) -> None:
    with db_factory() as session:
        ids = add_rows(session, [{"text": t, "embedding": old_vector(i), "embedding_model": OLD}
                                 for i, t in enumerate(TEXTS)])

    with pytest.raises(RuntimeError, match="encoder died"):
        reencode_outdated(db_factory, FailingEncoder(fail_on=2), batch_size=2, progress=False)

    rows = stored(db_factory)
    assert [rows[i][1] for i in ids] == [FakeEncoder.name] * 2 + [OLD] * 3  # the first batch is committed
    assert vectors_by_model(db_factory) == {FakeEncoder.name: 2, OLD: 3}

    encoder = FailingEncoder(fail_on=0)  # never fails; counts calls
    result = reencode_outdated(db_factory, encoder, batch_size=2, progress=False)
    assert (result.reencoded, result.skipped, result.by_model) == (3, 2, {OLD: 3})
    assert encoder.calls == 2  # only the three rows left, in batches of two
    rows = stored(db_factory)
    assert all(rows[i] == (fresh(t), FakeEncoder.name) for i, t in zip(ids, TEXTS, strict=True))


# --------------------------------------------------------------------------- CLI
@pytest.fixture()
def cli_db(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`shangliang` on a SQLite file under the test's var/, with the fake encoder."""
    import index.commands as commands

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{var_dir / 'cli.db'}")
    settings.cache_clear()
    monkeypatch.setattr(commands, "_encoder", lambda: FakeEncoder())
    from bot.storage.db import upgrade

    upgrade()
    yield
    dispose_engines()
    settings.cache_clear()


def last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_dry_run_counts_and_reencode_rebuilds_the_index(
        cli_db: None, var_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    with session_scope() as session:
        ids = add_rows(session, [{"text": t, "embedding": old_vector(i), "embedding_model": OLD,
                                  "jurisdiction": "A5区"} for i, t in enumerate(TEXTS[:4])])
        add_rows(session, [{"text": TEXTS[4], "embedding": FakeEncoder().encode([TEXTS[4]])[0],
                            "embedding_model": FakeEncoder.name}])

    assert main(["reindex", "--dry-run"]) == 0
    counts = last_json(capsys)
    assert counts == {"dry_run": True, "encoder": FakeEncoder.name,
                      "by_model": {OLD: 4, FakeEncoder.name: 1}, "to_reencode": 4, "current": 1}
    assert vectors_by_model(session_scope) == {OLD: 4, FakeEncoder.name: 1}  # nothing written

    assert main(["reindex", "--reencode", "--batch-size", "3"]) == 0
    metrics = last_json(capsys)
    assert {k: metrics[k] for k in ("encoder", "reencoded", "skipped", "by_model", "indexed", "dim")} == {
        "encoder": FakeEncoder.name, "reencoded": 4, "skipped": 1, "by_model": {OLD: 4}, "indexed": 5,
        "dim": FakeEncoder.dim}
    assert metrics["seconds"] >= 0

    # The rebuilt index holds the new vectors (16-dim old ones would not even fit it) and finds them.
    index = VectorIndex.load(var_dir / "index")
    assert index.dim == FakeEncoder.dim and len(index) == 5
    for sid, text in zip(ids, TEXTS, strict=False):
        assert np.array_equal(index.vector(sid), FakeEncoder().encode([text])[0])
    query = FakeEncoder().encode([TEXTS[1]])[0]
    assert index.search(query, 1)[0].submission_id == ids[1]

    assert main(["reindex", "--dry-run"]) == 0
    assert last_json(capsys)["to_reencode"] == 0


def test_cli_stopped_run_says_how_to_resume(cli_db: None, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import index.commands as commands
    from bot.cli import main

    with session_scope() as session:
        add_rows(session, [{"text": t, "embedding": old_vector(i), "embedding_model": OLD}
                           for i, t in enumerate(TEXTS)])
    monkeypatch.setattr(commands, "_encoder", lambda: FailingEncoder(fail_on=2))
    with caplog.at_level(logging.ERROR, logger="index.commands"):
        assert main(["reindex", "--reencode", "--batch-size", "2"]) == 1
    assert f"3 concerns still to re-encode: run `{COMMAND}` again" in caplog.text

    monkeypatch.setattr(commands, "_encoder", lambda: FakeEncoder())
    capsys.readouterr()
    assert main(["reindex", "--reencode", "--batch-size", "2"]) == 0
    metrics = last_json(capsys)
    assert (metrics["reencoded"], metrics["skipped"], metrics["indexed"]) == (3, 2, 5)


# --------------------------------------------------------------------------- intake service
async def start_service(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The intake service with the fake encoder and no routing (as in tests/test_api.py)."""
    from bot.service.app import create_app
    from bot.service.keys import BACKGROUND

    _install_router(monkeypatch, lambda session, case_id: None)
    app = create_app(encoder_factory=FakeEncoder, classifier_factory=lambda: None)
    from bot.tokens import service_token

    # Submissions need the action server's token (bot/service/auth.py).
    client = TestClient(TestServer(app), headers={"Authorization": f"Bearer {service_token()}"})
    await client.start_server()
    await app[BACKGROUND]  # models loaded, backfill and the start-up check done
    return client


async def test_service_vectors_equal_reencoded_ones_and_start_up_warns_once(
        cli_db: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    client = await start_service(monkeypatch)
    try:
        resp = await client.post("/api/v1/submissions", json={"text": f"  {TEXTS[0]}\n", "place": "东澜湾"})
        assert resp.status == 201
        submission_id = (await resp.json())["submission_id"]
    finally:
        await client.close()
    with session_scope() as session:
        row = session.get(Submission, submission_id)
        as_filed = row.embedding
        assert row.embedding_model == FakeEncoder.name
        row.embedding_model = OLD  # as if another encoder variant had filed it
        add_rows(session, [{"text": TEXTS[1], "embedding": old_vector(1), "embedding_model": "other@128"}])

    with caplog.at_level(logging.WARNING, logger="bot.service.analysis"):
        client = await start_service(monkeypatch)
        await client.close()
    warnings = [r.getMessage() for r in caplog.records if "another encoder" in r.getMessage()]
    assert len(warnings) == 1
    assert f"2 stored concern vectors were made by another encoder than {FakeEncoder.name}" in warnings[0]
    assert f"{OLD}: 1" in warnings[0] and "other@128: 1" in warnings[0] and f"`{COMMAND}`" in warnings[0]
    assert stored(session_scope)[submission_id][1] == OLD  # start-up itself re-encodes nothing

    # Re-encoding gives exactly the vector the intake service computed when the concern was filed.
    reencode_outdated(session_scope, FakeEncoder(), progress=False)
    assert stored(session_scope)[submission_id] == (as_filed, FakeEncoder.name)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bot.service.analysis"):
        client = await start_service(monkeypatch)
        await client.close()
    assert not [r for r in caplog.records if "another encoder" in r.getMessage()]

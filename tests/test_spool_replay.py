"""The action server's background spool replay (actions/replay.py) against the real intake service app
over HTTP with a real SQLite database: a concern spooled while the service was away is filed once it
answers again, without any resident speaking, and a second replay of the same concern files nothing."""

from __future__ import annotations

import asyncio
import json
import shutil

import sqlalchemy as sa

from actions import replay, spool
from actions.intake_client import IntakeClient
from bot.storage import db
from bot.storage.models import Submission
from bot.supervisor import free_port
from tests.test_api import MakeClient, make_client  # noqa: F401  (fixture)


def _payload(ref: str) -> dict:
    return {"text": "幸福小区3号楼门口的路灯坏了两个月了，晚上特别黑，老人出门很不安全。", "channel": "rest",
            "sender": "replay-test", "place": "幸福小区3号楼", "client_ref": ref}


def _stored(ref: str) -> int:
    with db.session_scope() as session:
        return len(list(session.execute(sa.select(Submission).filter_by(external_id=f"api:{ref}")).scalars()))


async def test_spooled_concern_is_replayed_once_when_the_service_is_back(make_client: MakeClient) -> None:  # noqa: F811
    spool.save(_payload("rest:replay-test:m1"))
    # The service is away (nothing listens on this port): the file stays for the next pass.
    away = IntakeClient(f"http://127.0.0.1:{free_port()}")
    assert await replay.replay_once(away) == 0
    assert len(spool.pending()) == 1

    client = await make_client()
    back = IntakeClient(str(client.make_url("")).rstrip("/"))
    stop = asyncio.Event()
    task = asyncio.create_task(replay.replay_forever(stop, interval=0.2, client_factory=lambda: back))
    for _ in range(100):
        if not spool.pending():
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert spool.pending() == []
    assert _stored("rest:replay-test:m1") == 1

    # The same concern spooled again (an action that spooled it at the same moment): filed once still.
    spool.save(_payload("rest:replay-test:m1"))
    assert await replay.replay_once(back) == 1
    assert _stored("rest:replay-test:m1") == 1


async def test_a_half_written_spool_file_is_never_read(make_client: MakeClient) -> None:  # noqa: F811
    # A write that failed half-way (disk full) leaves at most a .tmp file, which replay ignores.
    (spool.spool_dir() / "0123.tmp").write_text(json.dumps(_payload("x"))[:20], encoding="utf-8")
    client = await make_client()
    assert await replay.replay_once(IntakeClient(str(client.make_url("")).rstrip("/"))) == 0
    assert spool.pending() == []
    shutil.rmtree(spool.spool_dir())


def test_disk_full_while_spooling_leaves_nothing_half_written(var_dir, caplog) -> None:
    import errno
    import os

    import pytest

    payload = _payload("rest:replay-test:full")
    target = spool._file_for(payload["client_ref"])
    os.symlink("/dev/full", target.with_suffix(".tmp"))  # every write to it fails with ENOSPC
    with pytest.raises(OSError) as info:
        spool.save(payload)
    assert info.value.errno == errno.ENOSPC
    assert not target.exists() and not target.with_suffix(".tmp").exists()
    assert spool.pending() == []
    assert "cannot spool" in caplog.text

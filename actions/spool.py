"""Local spool for submissions made while the intake service is down; flushed on later action runs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from actions.intake_client import IntakeClient, IntakeError, IntakeUnavailable

logger = logging.getLogger(__name__)


def spool_dir() -> Path:
    base = os.environ.get("SHANGLIANG_VAR") or str(Path(__file__).resolve().parent.parent / "var")
    path = Path(base) / "spool"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file_for(client_ref: str) -> Path:
    return spool_dir() / f"{hashlib.sha1(client_ref.encode('utf-8')).hexdigest()}.json"


def save(payload: dict[str, Any]) -> Path:
    """Write the submission payload atomically; the client_ref makes a later replay idempotent."""
    path = _file_for(str(payload["client_ref"]))
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(payload, ensure_ascii=False))
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename makes it visible to a replay
        tmp.replace(path)
    except OSError as exc:
        # Disk full or read-only: say so plainly; only whole files are ever named *.json and replayed.
        tmp.unlink(missing_ok=True)
        logger.error("cannot spool a concern under %s: %s", path.parent, exc.strerror or exc)
        raise
    return path


def pending(sender: str | None = None) -> list[dict[str, Any]]:
    items = []
    for path in sorted(spool_dir().glob("*.json")):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if sender is None or payload.get("sender") == sender:
            items.append(payload)
    return items


async def flush(client: IntakeClient) -> int:
    """Submit spooled payloads oldest first; stop at the first outage. Returns how many went through."""
    sent = 0
    for path in sorted(spool_dir().glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            await client.submit(payload)
        except IntakeUnavailable:
            break
        except (IntakeError, ValueError) as exc:
            # The service refused it for good: keep it aside for staff instead of retrying forever.
            logger.warning("spooled submission %s rejected: %s", path.name, exc)
            rejected = spool_dir() / "rejected"
            rejected.mkdir(exist_ok=True)
            path.replace(rejected / path.name)
            continue
        path.unlink(missing_ok=True)
        sent += 1
    return sent

"""Local spool for submissions made while the intake service is down; flushed on later action runs.

At rest a spooled submission is encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with a key derived from
the service token. Why encryption and not pseudonyms: the payload must reach the intake service as it
was meant (the raw sender, so the resident later finds the case on their channel; the concern text,
which may itself hold a phone number the resident typed; the contact given with consent), so it cannot
be reduced beforehand; and the service token is the one secret the action server already holds, so a
spool file copied off the machine, or read by someone with var/ but not the token, says nothing. Each
file carries beside the ciphertext only a keyed hash of its sender ("owner"), so "do I have something
waiting?" is answered without decrypting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from actions.intake_client import IntakeClient, IntakeError, IntakeUnavailable
from bot.tokens import service_token

logger = logging.getLogger(__name__)

FORMAT = 1


def spool_dir() -> Path:
    base = os.environ.get("SHANGLIANG_VAR") or str(Path(__file__).resolve().parent.parent / "var")
    path = Path(base) / "spool"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret() -> bytes:
    return service_token().encode("utf-8")


def _fernet() -> Fernet:
    key = hashlib.sha256(b"shangliang-spool\x1f" + _secret()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def owner_key(sender: str) -> str:
    return hmac.new(_secret(), b"spool-owner\x1f" + str(sender).encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _file_for(client_ref: str) -> Path:
    return spool_dir() / f"{hashlib.sha256(client_ref.encode('utf-8')).hexdigest()[:40]}.json"


def save(payload: dict[str, Any]) -> Path:
    """Write the submission payload encrypted and atomically; the client_ref makes a later replay
    idempotent."""
    path = _file_for(str(payload["client_ref"]))
    envelope = {
        "format": FORMAT,
        "owner": owner_key(str(payload.get("sender") or "")),
        "data": _fernet().encrypt(json.dumps(payload, ensure_ascii=False).encode("utf-8")).decode("ascii"),
    }
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(envelope, fh)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the rename makes it visible to a replay
        tmp.replace(path)
    except OSError as exc:
        # Disk full or read-only: say so plainly; only whole files are ever named *.json and replayed.
        tmp.unlink(missing_ok=True)
        logger.error("cannot spool a concern under %s: %s", path.parent, exc.strerror or exc)
        raise
    return path


def _read(path: Path) -> dict[str, Any]:
    """The envelope of one spool file (raises ValueError when unreadable)."""
    envelope = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT or "data" not in envelope:
        raise ValueError("not a spool file of this version")
    return envelope


def _open(envelope: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = json.loads(_fernet().decrypt(str(envelope["data"]).encode("ascii")))
    except InvalidToken as exc:
        raise ValueError("cannot decrypt (was the service token changed?)") from exc
    if not isinstance(payload, dict):
        raise ValueError("not a submission")
    return payload


def pending(sender: str | None = None) -> list[str]:
    """Names of spool files waiting to be submitted (all, or only this sender's)."""
    names = []
    owner = owner_key(sender) if sender is not None else None
    for path in sorted(spool_dir().glob("*.json")):
        try:
            envelope = _read(path)
        except (OSError, ValueError):
            continue
        if owner is None or envelope.get("owner") == owner:
            names.append(path.name)
    return names


def _reject(path: Path, reason: object) -> None:
    # Only the file name and the reason: the payload holds the resident's words and ids.
    logger.warning("spooled submission %s set aside: %s", path.name, reason)
    rejected = spool_dir() / "rejected"
    rejected.mkdir(exist_ok=True)
    path.replace(rejected / path.name)


async def flush(client: IntakeClient) -> int:
    """Submit spooled payloads oldest first; stop at the first outage. Returns how many went through."""
    sent = 0
    for path in sorted(spool_dir().glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            payload = _open(_read(path))
            await client.submit(payload)
        except IntakeUnavailable:
            break
        except IntakeError as exc:
            if exc.status in (401, 429):
                # Not this submission's fault (a token being rotated, a rate limit): try again later.
                logger.warning("spool flush paused: intake answered %d %s", exc.status, exc.code)
                break
            # The service refused it for good: keep it aside for staff instead of retrying forever.
            _reject(path, exc.code)
            continue
        except (OSError, ValueError) as exc:
            _reject(path, exc)
            continue
        path.unlink(missing_ok=True)
        sent += 1
    return sent

"""Faults at start of the real intake service process: an unreachable database is waited for, with a log
line that says why (and no password)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bot.config import QUIET_ENV, REPO_ROOT
from bot.supervisor import free_port


def test_unreachable_database_is_waited_for_and_explained(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens here
    env = {**os.environ, **QUIET_ENV, "SHANGLIANG_VAR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT),
           "DATABASE_URL": f"postgresql://shangliang:s3cret-pw@127.0.0.1:{dead}/shangliang"}
    log_path = tmp_path / "intake.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(free_port())],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            text = ""
            while time.monotonic() < deadline and text.count("unreachable") < 2:
                time.sleep(1)
                text = log_path.read_text(encoding="utf-8")
            assert proc.poll() is None, text  # still waiting, not crashed
        finally:
            proc.terminate()
            proc.wait(20)
    assert text.count("unreachable") >= 2, text
    assert f"127.0.0.1:{dead}" in text and "trying again" in text, text
    assert "s3cret-pw" not in text

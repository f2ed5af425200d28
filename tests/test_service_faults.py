"""Starting and stopping the real intake service process: an unreachable database is waited for, with a
log line that says why (and no password); SIGTERM stops a ready service within seconds."""

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


def test_sigterm_stops_a_ready_intake_service_within_seconds(tmp_path: Path, encoder_model_path: Path) -> None:
    """It used to wait aiohttp's 60 s shutdown_timeout for its own outbox and sweep loops, and the
    supervisor killed it after 15 s."""
    import json
    import signal
    import urllib.request

    port = free_port()
    env = {**os.environ, **QUIET_ENV, "SHANGLIANG_VAR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT),
           "SHANGLIANG_ENCODER_PATH": str(encoder_model_path)}
    env.pop("DATABASE_URL", None)
    log_path = tmp_path / "intake.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
                                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            ready = False
            while not ready and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(1)
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                        ready = json.loads(resp.read().decode("utf-8")).get("models") == "ready"
                except OSError:
                    pass
            assert ready, log_path.read_text(encoding="utf-8")[-2000:]
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, log_path.read_text(encoding="utf-8")[-2000:]
    assert took < 8.0, f"stop took {took:.1f} s"
    assert "stopped" in log_path.read_text(encoding="utf-8")

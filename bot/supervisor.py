"""Start the Rasa server, the action server and the intake service together, and stop them together.

Used by `shangliang run` (logs to the console with a prefix per process, and to var/logs/) and by the
end-to-end tests (logs to files only, free ports, a temporary var/ directory).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from bot.config import QUIET_ENV, REPO_ROOT

log = logging.getLogger(__name__)

COLOURS = {"intake": "\033[36m", "actions": "\033[35m", "rasa": "\033[33m"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Ports:
    rasa: int = 5005
    actions: int = 5055
    intake: int = 8088

    @classmethod
    def free(cls) -> Ports:
        return cls(rasa=free_port(), actions=free_port(), intake=free_port())


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log_file: IO[str]
    pump: threading.Thread | None = None


@dataclass
class Stack:
    """The three processes of one deployment."""

    var_dir: Path
    model_path: Path
    ports: Ports = field(default_factory=Ports)
    host: str = "127.0.0.1"
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    credentials: Path = REPO_ROOT / "credentials.yml"
    echo: bool = True  # copy logs to this process's stdout with a prefix
    procs: list[_Proc] = field(default_factory=list)

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.ports.rasa}"

    @property
    def action_url(self) -> str:
        return f"http://{self.host}:{self.ports.actions}"

    @property
    def intake_url(self) -> str:
        return f"http://{self.host}:{self.ports.intake}"

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "logs"

    def env(self) -> dict[str, str]:
        env = {**os.environ, **QUIET_ENV, **self.extra_env}
        env["SHANGLIANG_VAR"] = str(self.var_dir)
        env["SHANGLIANG_HOST"] = self.host
        env["SHANGLIANG_PORT"] = str(self.ports.intake)
        env["SHANGLIANG_PUBLIC_URL"] = self.intake_url
        env["SHANGLIANG_RASA_URL"] = self.rasa_url
        env["SHANGLIANG_INTAKE_URL"] = self.intake_url
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        # Run from the repository so `actions` and `bot` import without installation tricks.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env

    def write_endpoints(self) -> Path:
        with open(REPO_ROOT / "endpoints.yml", encoding="utf-8") as fh:
            endpoints = yaml.safe_load(fh) or {}
        endpoints["action_endpoint"] = {"url": f"{self.action_url}/webhook"}
        tracker = endpoints.get("tracker_store") or {}
        if tracker.get("dialect") == "sqlite":
            tracker["db"] = str(self.var_dir / "rasa_tracker.db")
        path = self.var_dir / "run" / "endpoints.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(endpoints, allow_unicode=True), encoding="utf-8")
        return path

    def commands(self) -> dict[str, list[str]]:
        py = sys.executable
        return {
            "intake": [py, "-m", "bot.cli", "serve", "--host", self.host, "--port", str(self.ports.intake)],
            "actions": [py, "-m", "rasa_sdk", "--actions", "actions", "-p", str(self.ports.actions)],
            "rasa": [
                py, "-m", "rasa", "run", "--enable-api", "--cors", "*",
                "-i", self.host, "-p", str(self.ports.rasa),
                "-m", str(self.model_path),
                "--endpoints", str(self.write_endpoints()),
                "--credentials", str(self.credentials),
            ],
        }

    def start(self, timeout: float = 420.0) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        for name, cmd in self.commands().items():
            log_file = open(self.log_dir / f"{name}.log", "a", encoding="utf-8")
            popen = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, text=True, bufsize=1, errors="replace",
                start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
            )
            proc = _Proc(name, popen, log_file)
            proc.pump = threading.Thread(target=self._pump, args=(proc,), daemon=True)
            proc.pump.start()
            self.procs.append(proc)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _pump(self, proc: _Proc) -> None:
        assert proc.popen.stdout is not None
        colour = COLOURS.get(proc.name, "")
        for line in proc.popen.stdout:
            proc.log_file.write(line)
            proc.log_file.flush()
            if self.echo:
                sys.stdout.write(f"{colour}{proc.name:>7}\033[0m | {line}")
                sys.stdout.flush()

    def wait_ready(self, timeout: float) -> None:
        checks = {
            "intake": f"{self.intake_url}/health",
            "actions": f"{self.action_url}/health",
            "rasa": f"{self.rasa_url}/status",
        }
        deadline = time.monotonic() + timeout
        pending = dict(checks)
        while pending:
            for proc in self.procs:
                if proc.popen.poll() is not None:
                    raise RuntimeError(
                        f"{proc.name} exited with code {proc.popen.returncode}; see {self.log_dir / proc.name}.log:\n"
                        + self.tail(proc.name)
                    )
            for name, url in list(pending.items()):
                # The intake service answers /health at once; it is ready when its models are loaded.
                if _http_ok(url, require={"models": "ready"} if name == "intake" else None):
                    log.info("%s is ready (%s)", name, url)
                    del pending[name]
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f} s: {', '.join(pending)}")
            time.sleep(1.0)

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        # Rasa first (it calls the others), the intake service last (it owns the data).
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", proc.name)
                try:
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait(5)
            if proc.pump is not None:
                proc.pump.join(timeout=2)
            proc.log_file.close()
        self.procs.clear()


def _http_ok(url: str, require: dict[str, str] | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            if not 200 <= resp.status < 300:
                return False
            if not require:
                return True
            body = json.loads(resp.read().decode("utf-8"))
            return all(body.get(key) == value for key, value in require.items())
    except (urllib.error.URLError, OSError, ValueError):
        return False

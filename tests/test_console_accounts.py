"""`shangliang user ...` as a process on a real SQLite database, and the account rules underneath."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from bot.accounts import service
from bot.accounts.models import AuditEntry, User
from bot.accounts.service import AccountError, Throttle

REPO = Path(__file__).resolve().parent.parent


def _cli(var: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHANGLIANG_VAR": str(var), "PYTHONPATH": str(REPO),
           "DATABASE_URL": f"sqlite:///{var / 'accounts.db'}"}
    env.pop("SHANGLIANG_PASSWORD", None)
    if password is not None:
        env["SHANGLIANG_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "bot.cli", "user", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_user_commands(var_dir: Path) -> None:
    added = _cli(var_dir, "add", "chen", "--role", "staff", password="a-long-password")
    assert added.returncode == 0, added.stderr
    member = _cli(var_dir, "add", "wang", "--role", "member", "--member-id", "wang", "--committee", "transport",
                  password="another-password")
    assert member.returncode == 0, member.stderr
    assert _cli(var_dir, "add", "chen", "--role", "staff", password="a-long-password").returncode == 1
    assert _cli(var_dir, "add", "zhou", "--role", "member", password="a-long-password").returncode == 1
    no_password = _cli(var_dir, "add", "liu", "--role", "staff")
    assert no_password.returncode != 0 and "SHANGLIANG_PASSWORD" in no_password.stderr
    assert _cli(var_dir, "disable", "wang").returncode == 0
    assert _cli(var_dir, "passwd", "chen", password="changed-password").returncode == 0
    rows = [json.loads(line) for line in _cli(var_dir, "list").stdout.splitlines() if line.startswith("{")]
    assert {r["username"]: (r["role"], r["disabled"]) for r in rows} == {"chen": ("staff", False),
                                                                        "wang": ("member", True)}
    assert all("password" not in json.dumps(r) for r in rows)


def test_login_rules(db_factory: sessionmaker) -> None:
    throttle = Throttle(per_user=3, per_address=5)
    with db_factory() as session:
        user = service.create_user(session, "chen", "a-long-password", "staff")
        assert user.password_hash.startswith("$argon2id$") and "a-long-password" not in user.password_hash
        with pytest.raises(ValueError):
            service.create_user(session, "short", "1234", "staff")
        with pytest.raises(AccountError):
            service.create_user(session, "x", "a-long-password", "superuser")
        assert service.authenticate(session, "chen", "a-long-password", "10.0.0.1", throttle)[1] == "ok"
        assert service.authenticate(session, "nobody", "a-long-password", "10.0.0.1", throttle)[1] == "invalid"
        for _ in range(3):
            assert service.authenticate(session, "chen", "wrong", "10.0.0.2", throttle)[1] == "invalid"
        # Throttled by name: the right password from a fresh address is refused too.
        assert service.authenticate(session, "chen", "a-long-password", "10.0.0.3", throttle)[1] == "throttled"
        # Throttled by address: other names from 10.0.0.2 are refused after five failures there.
        service.create_user(session, "li", "a-long-password", "staff")
        for name in ("a", "b"):
            service.authenticate(session, name, "wrong", "10.0.0.2", throttle)
        assert service.authenticate(session, "li", "a-long-password", "10.0.0.2", throttle)[1] == "throttled"
        assert service.authenticate(session, "li", "a-long-password", "10.0.0.9", throttle)[1] == "ok"
        service.set_disabled(session, "li")
        assert service.authenticate(session, "li", "a-long-password", "10.0.0.9", throttle)[1] == "invalid"
        actions = [a for (a,) in session.query(AuditEntry.action).order_by(AuditEntry.id)]
        assert actions.count("login") == 2 and "login_throttled" in actions
        assert session.query(User).count() == 2

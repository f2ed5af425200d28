"""In-process token buckets for /chat/send and submissions, per sender and per client address.

One bucket per key: it holds up to `burst` requests and refills at `per_minute`. Each intake service
replica limits on its own (a resident spread over N replicas gets N times the rate; the limits are
there against floods, not for exact quotas). Settings: `rate_limits` in intake.yml.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.service.errors import ApiError

DEFAULTS: dict[str, dict[str, float]] = {
    "chat_per_sender": {"per_minute": 20, "burst": 10},
    "chat_per_ip": {"per_minute": 60, "burst": 30},
    "submissions_per_sender": {"per_minute": 4, "burst": 6},
    "submissions_per_ip": {"per_minute": 300, "burst": 100},
}
# Idle buckets are dropped once a limiter holds this many keys, so a flood of new ids cannot grow memory.
MAX_KEYS = 20000


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Thread-safe token buckets keyed by any string."""

    def __init__(self, per_minute: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(float(per_minute), 0.0) / 60.0
        self.burst = max(float(burst), 1.0)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False when its bucket is empty."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_KEYS:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            else:
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
                bucket.stamp = now
            if bucket.tokens < 1.0:
                return False
            bucket.tokens -= 1.0
            return True

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * self.rate >= self.burst]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]


class Limits:
    """The limiters of one intake service, built from settings."""

    def __init__(self, config: dict[str, Any] | None) -> None:
        config = config or {}
        self.trust_forwarded_for = bool(config.get("trust_forwarded_for", False))
        self.limiters = {name: RateLimiter(**{**default, **(config.get(name) or {})})
                         for name, default in DEFAULTS.items()}

    def client_address(self, request: web.Request) -> str:
        """The peer address; the first X-Forwarded-For hop only behind a trusted proxy (see intake.yml)."""
        if self.trust_forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
            if forwarded:
                return forwarded
        return request.remote or "unknown"

    def check(self, kind: str, request: web.Request, sender_key: str | None) -> None:
        """Raise 429 rate_limited when this client address or sender is over its limit for `kind`
        ("chat" or "submissions")."""
        allowed = self.limiters[f"{kind}_per_ip"].allow(self.client_address(request))
        if sender_key is not None:
            # Both buckets are charged, so a sender cannot dodge its own limit by rotating addresses.
            allowed = self.limiters[f"{kind}_per_sender"].allow(sender_key) and allowed
        if not allowed:
            raise ApiError("rate_limited")


LIMITS = web.AppKey("rate_limits", Limits)

"""Prometheus text-format metrics: request counts and latencies, submissions, cases.

Small on purpose (counters and one histogram); prometheus_client is not among the pinned packages.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

LabelKey = tuple[tuple[str, str], ...]


def _labels(key: LabelKey) -> str:
    if not key:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Process-wide counters; rendering adds gauges read from the database at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[LabelKey, int] = defaultdict(int)
        self.latency_buckets: dict[LabelKey, list[int]] = {}
        self.latency_sum: dict[LabelKey, float] = defaultdict(float)
        self.latency_count: dict[LabelKey, int] = defaultdict(int)
        self.submissions: dict[LabelKey, int] = defaultdict(int)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(("method", method), ("route", route), ("status", str(status)))] += 1
            key = (("route", route),)
            buckets = self.latency_buckets.setdefault(key, [0] * len(LATENCY_BUCKETS))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self.latency_sum[key] += seconds
            self.latency_count[key] += 1

    def count_submission(self, decision: str, replay: bool = False) -> None:
        with self._lock:
            self.submissions[(("decision", decision), ("replay", "true" if replay else "false"))] += 1

    def render(self, gauges: Iterable[tuple[str, str, dict[str, str], float]] = ()) -> str:
        """Text exposition format 0.0.4. `gauges`: (name, help, labels, value)."""
        lines: list[str] = []
        with self._lock:
            lines += ["# HELP shangliang_http_requests_total HTTP requests by route and status.",
                      "# TYPE shangliang_http_requests_total counter"]
            lines += [f"shangliang_http_requests_total{_labels(k)} {v}" for k, v in sorted(self.requests.items())]
            lines += ["# HELP shangliang_http_request_duration_seconds Request latency.",
                      "# TYPE shangliang_http_request_duration_seconds histogram"]
            for key, buckets in sorted(self.latency_buckets.items()):
                for bound, count in zip(LATENCY_BUCKETS, buckets, strict=True):
                    lines.append(
                        f"shangliang_http_request_duration_seconds_bucket{_labels(key + (('le', str(bound)),))} {count}"
                    )
                lines.append(f"shangliang_http_request_duration_seconds_bucket"
                             f"{_labels(key + (('le', '+Inf'),))} {self.latency_count[key]}")
                lines.append(f"shangliang_http_request_duration_seconds_sum{_labels(key)} {self.latency_sum[key]:.6f}")
                lines.append(f"shangliang_http_request_duration_seconds_count{_labels(key)} {self.latency_count[key]}")
            lines += ["# HELP shangliang_submissions_total Submissions accepted by this process, by duplicate decision.",
                      "# TYPE shangliang_submissions_total counter"]
            lines += [f"shangliang_submissions_total{_labels(k)} {v}" for k, v in sorted(self.submissions.items())]
        declared: set[str] = set()
        for name, help_text, labels, value in gauges:
            if name not in declared:
                declared.add(name)
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines.append(f"{name}{_labels(tuple(sorted(labels.items())))} {value}")
        return "\n".join(lines) + "\n"


def metrics_middleware(metrics: Metrics) -> Callable:
    """Counts every request under its route pattern (not the raw path, which holds case numbers)."""

    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            metrics.observe_request(request.method, route, status, time.perf_counter() - start)

    return middleware

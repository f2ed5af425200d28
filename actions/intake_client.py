"""Small aiohttp client for the intake service API (see docs/ARCHITECTURE.md, "Intake API")."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import aiohttp

DEFAULT_URL = "http://127.0.0.1:8088"
# Residents wait on the other end: fail fast and let the action phrase the outage.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3)


class IntakeUnavailable(Exception):
    """The intake service could not be reached or failed (network error, timeout, HTTP 5xx)."""


class IntakeError(Exception):
    """The intake service refused the request (HTTP 4xx) with a stable code and a Chinese message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def intake_url() -> str:
    return os.environ.get("SHANGLIANG_INTAKE_URL", DEFAULT_URL).rstrip("/")


class IntakeClient:
    """One method per API call; each opens a short-lived session so actions stay stateless."""

    def __init__(self, base_url: str | None = None, timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT) -> None:
        self.base_url = (base_url or intake_url()).rstrip("/")
        self.timeout = timeout

    async def _request(self, method: str, path: str, payload: dict[str, Any] | None = None,
                       params: dict[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.request(method, url, json=payload, params=params) as resp:
                    try:
                        body = await resp.json(content_type=None)
                    except ValueError:
                        body = None
                    if resp.status >= 500:
                        raise IntakeUnavailable(f"{method} {path}: HTTP {resp.status}")
                    if resp.status >= 400:
                        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
                        raise IntakeError(resp.status, str(error.get("code", "error")),
                                          str(error.get("message", "")))
                    return body if isinstance(body, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IntakeUnavailable(f"{method} {path}: {exc!r}") from exc

    async def analyze(self, text: str) -> dict[str, Any]:
        return await self._request("POST", "/api/v1/analyze", {"text": text})

    async def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", "/api/v1/submissions", payload)

    async def merge(self, submission_id: int, case_number: str) -> dict[str, Any]:
        return await self._request("POST", f"/api/v1/submissions/{int(submission_id)}/merge",
                                   {"case_number": case_number})

    async def keep(self, submission_id: int) -> dict[str, Any]:
        return await self._request("POST", f"/api/v1/submissions/{int(submission_id)}/keep", {})

    async def get_case(self, number: str) -> dict[str, Any] | None:
        """The case, or None when no case has this number."""
        try:
            return await self._request("GET", f"/api/v1/cases/{quote(number, safe='')}")
        except IntakeError as exc:
            if exc.status == 404:
                return None
            raise

    async def cases_for_sender(self, sender: str, channel: str) -> list[dict[str, Any]]:
        body = await self._request("GET", "/api/v1/cases", params={"sender": sender, "channel": channel})
        cases = body.get("cases", [])
        return cases if isinstance(cases, list) else []

    async def handoff(self, sender: str, channel: str, text: str, reason: str) -> dict[str, Any]:
        return await self._request("POST", "/api/v1/handoffs",
                                   {"sender": sender, "channel": channel, "text": text, "reason": reason})

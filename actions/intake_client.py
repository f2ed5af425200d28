"""Small aiohttp client for the intake service API (see docs/ARCHITECTURE.md, "Intake API").

Every call carries the service token (SHANGLIANG_SERVICE_TOKEN, else var/service_token). Calls made for
one resident also name them (X-Shangliang-Sender / X-Shangliang-Channel): the intake service then shows
that resident the full view of their own cases and lets them merge or keep only their own submissions.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.service.pseudonym import pseudonymise
from bot.tokens import service_token

DEFAULT_URL = "http://127.0.0.1:8088"
# The resident an action runs for (read by bot/service/auth.py).
SENDER_HEADER = "X-Shangliang-Sender"
CHANNEL_HEADER = "X-Shangliang-Channel"
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


def client_ref(channel: str, sender: str, message_id: str) -> str:
    """Idempotency key of one confirmed submission: built from the sender's pseudonym (the same keyed
    hash the intake service stores), so the raw openid is never kept in the database's external_id."""
    return f"{channel}:{pseudonymise(channel, sender)}:{message_id}"


def intake_url() -> str:
    return os.environ.get("SHANGLIANG_INTAKE_URL", DEFAULT_URL).rstrip("/")


class IntakeClient:
    """One method per API call; each opens a short-lived session so actions stay stateless."""

    def __init__(self, base_url: str | None = None, timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
                 token: str | None = None) -> None:
        self.base_url = (base_url or intake_url()).rstrip("/")
        self.timeout = timeout
        self.token = token

    def _headers(self, sender: str | None, channel: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token or service_token()}"}
        if sender:
            headers[SENDER_HEADER] = str(sender)
            headers[CHANNEL_HEADER] = channel or "rest"
        return headers

    async def _request(self, method: str, path: str, payload: dict[str, Any] | None = None,
                       params: dict[str, str] | None = None, sender: str | None = None,
                       channel: str | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        headers = self._headers(sender, channel)
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.request(method, url, json=payload, params=params, headers=headers) as resp:
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

    async def merge(self, submission_id: int, case_number: str, *, sender: str, channel: str) -> dict[str, Any]:
        """Merge the resident's own submission (403 forbidden when `sender` did not file it)."""
        return await self._request("POST", f"/api/v1/submissions/{int(submission_id)}/merge",
                                   {"case_number": case_number}, sender=sender, channel=channel)

    async def keep(self, submission_id: int, *, sender: str, channel: str) -> dict[str, Any]:
        return await self._request("POST", f"/api/v1/submissions/{int(submission_id)}/keep", {},
                                   sender=sender, channel=channel)

    async def get_case(self, number: str, *, sender: str | None = None,
                       channel: str | None = None) -> dict[str, Any] | None:
        """The case, or None when no case has this number. With the resident named, their own case comes
        as the full view; anyone else's only as the public view (status and a redacted subject line)."""
        try:
            return await self._request("GET", f"/api/v1/cases/{quote(number, safe='')}",
                                       sender=sender, channel=channel)
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

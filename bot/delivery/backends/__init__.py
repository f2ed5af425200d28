"""Delivery backends. Each has `async send(message: Message) -> None` and raises DeliveryError on failure."""

from __future__ import annotations

from dataclasses import dataclass


class DeliveryError(Exception):
    """The message was not delivered; the worker will retry it."""


@dataclass(frozen=True)
class Message:
    id: int
    key: str
    kind: str
    member_id: str | None
    case_id: int | None
    target: dict
    subject: str
    body: str
    payload: dict | None

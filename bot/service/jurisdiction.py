"""The district a concern names, stored as `Case.jurisdiction` and passed to the duplicate index.

A district of the 包联 areas in routing.yml wins when the place or the text names it (or names one of its
streets or communities, see bot.routing.rules.locate); otherwise the district the text itself names
(雨花区, A3区); None when nothing is named. Recorded only: the duplicate search does not filter by it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from bot.config import resolve_path, settings
from bot.text.places import find_district

if TYPE_CHECKING:
    from bot.routing.directory import Directory

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cached: tuple[float, Directory | None] | None = None


def routing_directory() -> Directory | None:
    """The directory of routing.yml (re-read when the file changes), or None when routing is not
    installed or the file cannot be read: the district is then read from the text alone."""
    global _cached
    try:
        from bot.routing.directory import load_directory

        path = resolve_path((settings().get("routing") or {}).get("directory", "routing.yml"))
        mtime = path.stat().st_mtime
    except (ImportError, OSError):
        return None
    with _lock:
        if _cached is None or _cached[0] != mtime:
            try:
                _cached = (mtime, load_directory(path))
            except Exception as exc:  # an invalid directory must not stop intake
                log.warning("routing directory unreadable, districts are read from the text only: %s", exc)
                _cached = (mtime, None)
        return _cached[1]


def jurisdiction_of(text: str, place: str | None = None, directory: Directory | None = None) -> str | None:
    """The district of a concern: what its place names, else what its text names."""
    for source in (place, text):
        if not source:
            continue
        if directory is not None:
            from bot.routing.rules import CaseFacts, locate

            district = locate(CaseFacts(topic=None, place=source), directory)[0]
            if district:
                return district
        district = find_district(source)
        if district:
            return district[:100]
    return None

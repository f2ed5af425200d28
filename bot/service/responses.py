"""JSON responses that keep Chinese readable (no \\uXXXX escapes) for every handler."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)

"""Refuse hostile XML before wechatpy (xmltodict/expat) sees it.

WeChat never sends a DOCTYPE, entities or deep nesting, so anything like that is an attack
(billion laughs, external entities) or garbage. defusedxml is not a dependency here; expat with
DOCTYPE/entity handlers that raise gives the same protection for this tiny message format.
"""

from __future__ import annotations

import re
from xml.parsers import expat

MAX_DEPTH = 8  # <xml><ScanCodeInfo><ScanResult> is the deepest WeChat goes
MAX_ELEMENTS = 200

_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)|<\?xml-stylesheet", re.IGNORECASE)


class UnsafeXML(ValueError):
    """The payload is not a plain, small XML document."""


def check_xml(data: bytes | str) -> None:
    """Raise UnsafeXML unless `data` is well-formed XML without DTD, entities or deep nesting."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not raw.strip():
        raise UnsafeXML("empty body")
    if _FORBIDDEN.search(raw):
        raise UnsafeXML("DTD or entity declarations are not allowed")

    parser = expat.ParserCreate()
    state = {"depth": 0, "count": 0}

    def refuse(*_args: object) -> None:
        raise UnsafeXML("DTD or entity declarations are not allowed")

    def start(_name: str, _attrs: dict) -> None:
        state["depth"] += 1
        state["count"] += 1
        if state["depth"] > MAX_DEPTH:
            raise UnsafeXML("XML nested too deeply")
        if state["count"] > MAX_ELEMENTS:
            raise UnsafeXML("too many XML elements")

    def end(_name: str) -> None:
        state["depth"] -= 1

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(raw, True)
    except expat.ExpatError as exc:
        raise UnsafeXML(f"malformed XML: {exc}") from None

"""Personal-data redaction: the one path every surface uses (reports, digests, case views, replies, logs).

The text is folded (全角 → half-width) for the detectors in `bot.text.pii`; masks replace the resident's
own characters, so everything else reads exactly as written. If redaction itself fails the caller gets
`HIDDEN` (the whole text hidden), never the raw text.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.text.normalize import normalize_with_offsets
from bot.text.pii import COMPOUND_SURNAMES, KINDS, Span, find_all

log = logging.getLogger(__name__)

HIDDEN = "[内容已隐去]"
MASKS = {
    "phone": "[电话已隐去]",
    "id_card": "[身份证号已隐去]",
    "bank_card": "[卡号已隐去]",
    "email": "[邮箱已隐去]",
    "plate": "[车牌已隐去]",
    "room": "[门牌已隐去]",
}
# What a resident who consented to be called back lets the members it is routed to see.
CONTACT_KINDS = frozenset({"phone", "email", "name"})


@dataclass(frozen=True)
class Redactor:
    """Masks the `kinds` of personal data it is given (default: all of them)."""

    kinds: frozenset[str] = frozenset(KINDS)

    def spans(self, text: str, known_names: Iterable[str] = ()) -> list[Span]:
        """Spans of personal data on `text` itself (not the folded copy), sorted, not overlapping."""
        folded, offsets = normalize_with_offsets(text)
        found = []
        for span in find_all(folded, known_names):
            if span.kind in self.kinds:
                found.append(Span(offsets[span.start], offsets[span.end - 1] + 1, span.kind))
        return found

    def redact(self, text: str, known_names: Iterable[str] = ()) -> str:
        """`text` with every span masked; on any error inside the detectors, `HIDDEN`."""
        if not text:
            return text
        try:
            return masked(text, self.spans(text, known_names))
        except Exception as exc:  # noqa: BLE001 - fail closed: hiding everything beats leaking anything
            log.error("redaction failed (%s); the whole text is hidden", type(exc).__name__)
            return HIDDEN


def masked(text: str, spans: Iterable[Span]) -> str:
    """`text` with each of the sorted, non-overlapping `spans` replaced by its mask."""
    out, pos = [], 0
    for span in spans:
        out.append(text[pos:span.start])
        out.append(_mask(text[span.start:span.end], span.kind))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def _mask(value: str, kind: str) -> str:
    if kind != "name":
        return MASKS[kind]
    # The 李某 convention: the surname stays, the given name goes; a surname alone ("我姓李") goes too.
    surname = next((c for c in COMPOUND_SURNAMES if value.startswith(c)), value[:1])
    return surname + "某" if len(value) > len(surname) else "某"


FULL = Redactor()
WITH_CONTACT = Redactor(frozenset(KINDS) - CONTACT_KINDS)


def redact(text: str, keep_contact: bool = False, known_names: Iterable[str] = ()) -> str:
    """Mask personal data. With the resident's consent (`keep_contact`), phone numbers, e-mail and names
    stay so a member can call back; ID and card numbers, plates and flats never do. `known_names` (the
    name the resident gave in the contact form) are masked wherever they appear."""
    if keep_contact:
        return WITH_CONTACT.redact(text)
    return FULL.redact(text, known_names)


_CLAUSE_END = re.compile(r"[。！？!?；;\n]")


def subject_line(text: str, limit: int = 30) -> str:
    """A redacted one-line subject of a concern (its first sentence, shortened): what strangers, other
    residents and merge offers may see. Redaction runs on the whole text first, so a mask is never cut."""
    clean = " ".join(redact(text or "").split())
    first = _CLAUSE_END.split(clean, maxsplit=1)[0].strip() or clean
    if len(first) <= limit:
        return first
    cut = first[: limit - 1]
    if cut.rfind("[") > cut.rfind("]"):  # never show half a mask ("[电话已…")
        cut = cut[: cut.rfind("[")].rstrip()
    return cut + "…"


def warm_up() -> None:
    """Load what the detectors load lazily (jieba's tagged dictionary, about 2-3 s)."""
    FULL.redact("我是张伟，电话13612345678")


# ---- logs ----------------------------------------------------------------------------------------
_in_filter = threading.local()


def redact_log_record(record: logging.LogRecord) -> bool:
    """The log filter: the record's message, with its args merged in, is redacted in place (a resident's
    phone or name in a log line becomes a mask). Usable as `handler.addFilter(redact_log_record)`; always
    keeps the record."""
    if getattr(_in_filter, "active", False):  # a record logged by redaction itself (or jieba loading)
        return True
    _in_filter.active = True
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string: logging reports that itself
        return True
    else:
        clean = FULL.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True
    finally:
        _in_filter.active = False


def install_log_redaction(warm: bool = False) -> None:
    """Run `redact_log_record` on every record this process creates from now on, whichever logger or
    handler (Rasa SDK and aiohttp add their own) it goes to. Idempotent. Servers pass `warm=True`: the
    dictionary the name detector consults loads in a background thread instead of inside the first
    request that logs a self-introduction."""
    if warm:
        threading.Thread(target=warm_up, name="redaction-warm-up", daemon=True).start()
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        redact_log_record(record)
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


# At rest the concern keeps what staff need to act (the flat that leaks, a plate that blocks the gate, a
# name), but never an ID or card number, nor a phone or e-mail the resident did not consent to share.
_AT_REST = Redactor(frozenset({"id_card", "bank_card"}))
_AT_REST_NO_CONSENT = Redactor(frozenset({"id_card", "bank_card", "phone", "email"}))


def redact_at_rest(text: str, keep_contact: bool = False) -> str:
    """The text as the database keeps it. Unlike `redact`, a failure keeps the text as written: a
    concern is never lost, and every surface that shows it redacts again on the way out."""
    redactor = _AT_REST if keep_contact else _AT_REST_NO_CONSENT
    try:
        spans = redactor.spans(text or "")
    except Exception as exc:  # noqa: BLE001 - storing the concern matters more than masking it here
        log.error("redaction at rest failed (%s); stored as written", type(exc).__name__)
        return text
    return masked(text, spans)

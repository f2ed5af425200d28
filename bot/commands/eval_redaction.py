"""CLI: `shangliang eval redaction [--cases F] [--split dev|test|all] [--function MOD:ATTR]`.

Span-level precision and recall of the redaction path on hand-written strings (evals/redaction). A
predicted span is correct when it overlaps a gold span of the same kind; a gold span is found when a
predicted span of its kind overlaps it ("overall" ignores kinds: a landline masked as a phone still
hides it). `--function` scores any `str -> str` redactor (the old module, a library) by aligning its
output with the input: what it replaced is what it predicted.
"""

from __future__ import annotations

import difflib
import importlib
import json
from collections.abc import Callable
from pathlib import Path

from bot.config import REPO_ROOT
from bot.text.pii import KINDS, Span

DEFAULT_CASES = REPO_ROOT / "evals" / "redaction" / "cases.jsonl"
# Which kind a text-only redactor meant, read off its replacement.
_TOKEN_KINDS = (("身份证", "id_card"), ("卡", "bank_card"), ("邮箱", "email"), ("车牌", "plate"),
                ("门牌", "room"), ("房", "room"), ("电话", "phone"), ("手机", "phone"), ("某", "name"),
                ("*", "any"), ("内容已隐去", "any"))


def register(sub, groups) -> None:
    ev = groups["eval"].add_parser("redaction", help="redaction: per-kind span precision/recall")
    ev.add_argument("--cases", default=str(DEFAULT_CASES), help="JSONL: text, spans [{start, end, kind}], split")
    ev.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    ev.add_argument("--function", help="score MODULE:ATTR (str -> str) instead of bot.text.redact")
    ev.add_argument("--errors", action="store_true", help="print each missed and spurious span")
    ev.set_defaults(func=cmd_eval)


def load_cases(path: str | Path, split: str = "all") -> list[dict]:
    cases = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            case = json.loads(line)
            if split == "all" or case.get("split", "dev") == split:
                cases.append(case)
    return cases


def spans_from_output(original: str, redacted: str) -> list[Span]:
    """What a text-only redactor replaced or deleted, with the kind its replacement names."""
    spans = []
    matcher = difflib.SequenceMatcher(None, original, redacted, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op in ("replace", "delete") and i2 > i1:
            token = redacted[j1:j2]
            kind = next((k for cue, k in _TOKEN_KINDS if cue in token), "any")
            spans.append(Span(i1, i2, kind))
    return spans


def score(cases: list[dict], predict: Callable[[str], list[Span]]) -> tuple[dict, list[str]]:
    counts = {k: {"tp": 0, "fp": 0, "fn": 0} for k in (*KINDS, "overall")}
    errors: list[str] = []
    untouched = clean = 0
    for case in cases:
        gold = [Span(s["start"], s["end"], s["kind"]) for s in case["spans"]]
        pred = predict(case["text"])
        if not gold:
            clean += 1
            untouched += not pred
        for kind in (*KINDS, "overall"):
            g = [s for s in gold if kind in ("overall", s.kind)]
            p = [s for s in pred if kind in ("overall", s.kind) or (s.kind == "any" and _hits(s, g))]
            tp_pred = [s for s in p if _hits(s, g)]
            found = [s for s in g if _hits(s, p)]
            counts[kind]["tp"] += len(found)
            counts[kind]["fn"] += len(g) - len(found)
            counts[kind]["fp"] += len(p) - len(tp_pred)
            if kind == "overall":
                errors += [f"MISS {case['id']} {s.kind} {case['text'][s.start:s.end]!r} in {case['text']}"
                           for s in g if s not in found]
                errors += [f"FP   {case['id']} {s.kind} {case['text'][s.start:s.end]!r} in {case['text']}"
                           for s in p if s not in tp_pred]
    result = {}
    for kind, c in counts.items():
        if kind != "overall" and not (c["tp"] or c["fp"] or c["fn"]):
            continue
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[kind] = {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), **c}
    return {"per_kind": {k: v for k, v in result.items() if k != "overall"}, "overall": result["overall"],
            "look_alikes_untouched": round(untouched / clean, 3) if clean else 1.0}, errors


def _hits(span: Span, others: list[Span]) -> bool:
    return any(o.start < span.end and span.start < o.end for o in others)


def _predictor(function: str | None) -> Callable[[str], list[Span]]:
    if not function:
        from bot.text.redact import FULL

        return FULL.spans
    module, _, attr = function.partition(":")
    redact = getattr(importlib.import_module(module), attr or "redact")
    return lambda text: spans_from_output(text, redact(text))


def cmd_eval(args) -> int:
    cases = load_cases(args.cases, args.split)
    metrics, errors = score(cases, _predictor(args.function))
    if args.errors:
        for line in errors:
            print(line)
    print(f"{'kind':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'tp':>4} {'fp':>4} {'fn':>4}")
    for kind, m in [*metrics["per_kind"].items(), ("overall", metrics["overall"])]:
        print(f"{kind:<10} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} "
              f"{m['tp']:>4} {m['fp']:>4} {m['fn']:>4}")
    print(f"look-alike strings left untouched: {metrics['look_alikes_untouched']:.3f}")
    print(json.dumps({"split": args.split, "cases": len(cases), "redactor": args.function or "bot.text.redact",
                      **metrics}, ensure_ascii=False))
    return 0

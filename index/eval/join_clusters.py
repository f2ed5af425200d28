"""Join the committed cluster labels with the shared message file into `eval clusters` JSONL.

    python -m index.eval.join_clusters --split test --out var/eval/clusters_test.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LABELS = HERE / "clusters_gov_replies.json"
SOURCE = HERE.parent.parent.parent / "shared" / "data" / "gov_messages_replies.jsonl"


def cluster_messages(labels_path: Path = LABELS, source_path: Path = SOURCE,
                     split: str = "test") -> list[dict[str, Any]]:
    """Messages {id,title,text,label,time} of one split ("calib", "test" or "all")."""
    labels = json.loads(Path(labels_path).read_text(encoding="utf-8"))
    wanted: dict[str, Any] = {}
    for name in ("calib", "test"):
        if split in (name, "all"):
            wanted.update(labels[name])
    with open(source_path, encoding="utf-8") as fh:
        rows = {str(r["id"]): r for r in map(json.loads, fh)}
    missing = [i for i in wanted if i not in rows]
    if missing:
        raise ValueError(f"{len(missing)} labelled ids are not in {source_path}")
    return [
        {"id": i, "title": rows[i].get("title"), "text": rows[i]["text"], "label": label,
         "time": rows[i].get("time")}
        for i, label in wanted.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", default=str(LABELS))
    parser.add_argument("--source", default=str(SOURCE))
    parser.add_argument("--split", choices=["calib", "test", "all"], default="test")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    messages = cluster_messages(Path(args.labels), Path(args.source), args.split)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for m in messages:
            fh.write(json.dumps(m, ensure_ascii=False) + "\n")
    print(f"{len(messages)} messages -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

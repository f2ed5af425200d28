"""CLI: `import`, `reindex [--reencode]`, `calibrate dedup`, `eval dedup`, `eval clusters`, `bench dedup`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_CLUSTER_LABELS = Path(__file__).resolve().parent / "eval" / "clusters_gov_replies.json"
# ../shared beside the repository (evaluation data is never copied into it).
DEFAULT_SOURCE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gov_messages_replies.jsonl"


def _print_metrics(metrics: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(json.dumps(metrics, ensure_ascii=False), flush=True)


def _encoder() -> Any:
    from index.encoder import default_encoder

    return default_encoder()


def _detector_factory(calibration: str | None) -> Any:
    from index.dedup import DuplicateDetector, load_calibration

    params = load_calibration(calibration)
    return lambda index, fetch: DuplicateDetector(index, fetch, params)


def index_store(encoder_dim: int, catch_up: bool = True) -> Any:
    """The service's IndexStore on the configured database and index path."""
    from bot.config import resolve_path, settings
    from bot.storage.db import session_scope
    from index.store import IndexStore

    path = resolve_path(settings().get("index", {}).get("path", "var/index"))
    return IndexStore(session_scope, encoder_dim, path, catch_up=catch_up)


# --------------------------------------------------------------------------- import / reindex
def cmd_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bot.service.jurisdiction import jurisdiction_of, routing_directory
    from bot.storage import repository
    from bot.storage.db import session_scope, upgrade
    from bot.storage.models import Submission
    from index.evaluate import message_text, parse_time, read_jsonl

    upgrade()
    rows = read_jsonl(args.file)
    with session_scope() as session:
        known = {r[0] for r in session.query(Submission.external_id).filter(
            Submission.external_id.like("import:%"))}
    todo = [r for r in rows if f"import:{r['id']}" not in known]
    print(f"{len(rows)} messages, {len(rows) - len(todo)} already imported, {len(todo)} to import")
    if todo:
        encoder = _encoder()
        directory = routing_directory()
        with tqdm(total=len(todo), desc="import", unit="msg") as bar:
            for start in range(0, len(todo), args.batch_size):
                chunk = todo[start: start + args.batch_size]
                vectors = encoder.encode([message_text(r) for r in chunk])
                with session_scope() as session:
                    for row, vector in zip(chunk, vectors, strict=False):
                        repository.create_submission(
                            session,
                            text=str(row.get("text") or ""),
                            title=row.get("title") or None,
                            channel="import",
                            source="import",
                            external_id=f"import:{row['id']}",
                            label=(str(row["label"]) if row.get("label") is not None else None)
                            if args.labeled else None,
                            created_at=parse_time(row.get("time")),
                            embedding=vector,
                            embedding_model=encoder.name,
                            # The district, as live cases record it (routing and reports read it).
                            jurisdiction=jurisdiction_of(message_text(row), None, directory),
                        )
                bar.update(len(chunk))
        # The DB is committed: the index catches up from it (a crash here loses nothing).
        store = index_store(encoder.dim)
        store.close()
    return 0


def _stored_dim() -> int | None:
    from sqlalchemy import select

    from bot.storage.db import session_scope
    from bot.storage.models import Submission

    with session_scope() as session:
        blob = session.execute(
            select(Submission.embedding).where(Submission.embedding.isnot(None)).limit(1)
        ).scalar()
    return len(blob) // 4 if blob else None


def cmd_reindex(args: argparse.Namespace) -> int:
    from bot.storage.db import upgrade

    upgrade()
    if args.dry_run or args.reencode:
        return _reencode(args)
    dim = _stored_dim() or _encoder().dim
    store = index_store(dim, catch_up=False)
    size = store.rebuild(progress=True)
    _print_metrics({"indexed": size, "kind": store.index.kind, "dim": dim})
    return 0


def _reencode(args: argparse.Namespace) -> int:
    """`reindex --reencode` / `--dry-run`: the work is in index.reencode; this only wires and reports."""
    from bot.storage.db import session_scope
    from index.reencode import COMMAND, outdated_counts, reencode_outdated, vectors_by_model

    encoder = _encoder()
    if args.dry_run:
        counts = vectors_by_model(session_scope)
        _print_metrics({"dry_run": True, "encoder": encoder.name, "by_model": dict(sorted(counts.items())),
                        "to_reencode": sum(outdated_counts(counts, encoder.name).values()),
                        "current": counts.get(encoder.name, 0)})
        return 0
    try:
        result = reencode_outdated(session_scope, encoder, batch_size=args.batch_size, progress=True)
    except (Exception, KeyboardInterrupt) as exc:
        # Finished batches are committed: say how much is left and how to go on.
        interrupted = isinstance(exc, KeyboardInterrupt)
        try:
            left: Any = sum(outdated_counts(vectors_by_model(session_scope), encoder.name).values())
        except Exception:  # the database may be what failed
            left = "some"
        log.error("re-encoding stopped (%s: %s); %s concerns still to re-encode: run `%s` again to resume",
                  type(exc).__name__, exc, left, COMMAND, exc_info=not interrupted)
        return 130 if interrupted else 1
    # Vectors changed in place, which the index catch-up does not detect: rebuild like plain reindex.
    store = index_store(encoder.dim, catch_up=False)
    size = store.rebuild(progress=True)
    _print_metrics({**result.metrics(), "indexed": size, "kind": store.index.kind, "dim": encoder.dim})
    return 0


# --------------------------------------------------------------------------- cluster data
def _messages(args: argparse.Namespace) -> list[dict[str, Any]]:
    from index.eval.join_clusters import cluster_messages
    from index.evaluate import read_jsonl

    if args.messages:
        return read_jsonl(args.messages)
    return cluster_messages(Path(args.labels), Path(args.source), args.split)


def _add_cluster_source(parser: argparse.ArgumentParser, default_split: str) -> None:
    parser.add_argument("--messages", help="JSONL {id,title,text,label,time}; label = cluster id or null")
    parser.add_argument("--labels", default=str(DEFAULT_CLUSTER_LABELS),
                        help="without --messages: committed cluster labels joined with --source")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE), help="the shared gov_messages_replies.jsonl")
    parser.add_argument("--split", choices=["calib", "test", "all"], default=default_split,
                        help="which part of the committed labels (calibrate on calib, report test)")


# --------------------------------------------------------------------------- calibrate / eval
def cmd_calibrate(args: argparse.Namespace) -> int:
    from index.calibrate import calibrate
    from index.dedup import CALIBRATION_FILE
    from index.evaluate import read_jsonl

    encoder = _encoder()
    clusters = None if args.no_clusters else _messages(args)
    if args.cv:
        from index.calibrate import cross_validate

        if not clusters:
            raise SystemExit("--cv needs cluster messages")
        _print_metrics(cross_validate(clusters, encoder.encode, encoder.name, folds=args.cv, seed=args.seed,
                                      merge_precision=args.merge_precision, ask_precision=args.ask_precision))
        return 0
    pairs = read_jsonl(args.pairs) if args.pairs else None
    files: dict[str, str] = {}
    notes: dict[str, Any] = {}
    if clusters is not None:
        if args.messages:
            files["clusters"] = args.messages
        else:
            files.update(cluster_labels=args.labels, cluster_source=args.source)
            notes["cluster_split"] = args.split
    if args.pairs:
        files["pairs"] = args.pairs
    result = calibrate(clusters, pairs, encoder.encode, encoder.name, sources=files, notes=notes,
                       out=Path(args.out) if args.out else CALIBRATION_FILE,
                       merge_precision=args.merge_precision, ask_precision=args.ask_precision)
    _print_metrics({k: result[k] for k in ("weights", "intercept", "merge_threshold", "ask_threshold",
                                           "training_pairs", "training_positives")})
    return 0


def cmd_eval_dedup(args: argparse.Namespace) -> int:
    from index.evaluate import evaluate_pairs, read_jsonl

    encoder = _encoder()
    pairs = read_jsonl(args.pairs)
    if args.limit:
        pairs = pairs[: args.limit]
    metrics = evaluate_pairs(pairs, encoder.encode, encoder.name, _detector_factory(args.calibration))
    _print_metrics({"pairs_file": Path(args.pairs).name, **metrics})
    return 0


def cmd_eval_clusters(args: argparse.Namespace) -> int:
    from index.evaluate import evaluate_clusters

    encoder = _encoder()
    messages = _messages(args)
    metrics = evaluate_clusters(messages, encoder.encode, encoder.name, _detector_factory(args.calibration))
    _print_metrics({"split": None if args.messages else args.split, **metrics})
    return 0


# --------------------------------------------------------------------------- bench
def _encoder_info(encoder: Any) -> dict[str, Any]:
    return {key: getattr(encoder, key, None) for key in ("name", "runtime", "threads", "max_seq_length", "quantized")}


def cmd_bench(args: argparse.Namespace) -> int:
    from index.bench_dedup import VectorSource, bench_decision, bench_index
    from index.evaluate import embed_cached, message_text, read_jsonl

    real = None
    texts: list[str] = []
    encoder = None
    if args.vectors_from and Path(args.vectors_from).exists():
        encoder = _encoder()
        texts = [message_text(r) for r in read_jsonl(args.vectors_from)]
        real = embed_cached(encoder.encode, texts, encoder.name)
    source = VectorSource(real, around_real=args.around_real)
    results: dict[str, Any] = {"vectors": source.kind, "index": []}
    for n in [int(x) for x in args.n.split(",") if x]:
        figures = bench_index(source, n, queries=args.queries, exact_below=args.exact_below,
                              hnsw_m=args.hnsw_m, ef_search=args.ef_search,
                              ef_construction=args.ef_construction)
        print(json.dumps(figures), flush=True)
        results["index"].append(figures)
    if args.decision_n:
        from index.encoder import encoder_from_settings, encoder_overrides

        overrides = encoder_overrides(quantize=args.int8, max_seq_length=args.max_seq_length,
                                      threads=args.threads, runtime=args.runtime)
        if overrides:

            encoder = encoder_from_settings(**overrides)
        elif encoder is None:
            encoder = _encoder()
        if not texts:
            texts = ["小区旁边的搅拌站每天晚上施工，噪音很大，影响休息。", "3号楼电梯经常坏，老人上下楼很困难。"]
        results["decision"] = bench_decision(
            source, texts, encoder.encode, n=args.decision_n, trials=args.trials,
            index_kwargs={"exact_below": args.exact_below, "hnsw_m": args.hnsw_m,
                          "ef_search": args.ef_search, "ef_construction": args.ef_construction},
            cold_cache=args.cold_cache, encoder_info=_encoder_info(encoder))
        print(json.dumps(results["decision"]), flush=True)
    _print_metrics(results)
    return 0


def register(sub: Any, groups: dict[str, Any]) -> None:
    from bot.config import settings

    cfg = settings().get("index", {})

    p = sub.add_parser("import", help="import historical messages (JSONL id,title,text,label,time) as past concerns")
    p.add_argument("file")
    p.add_argument("--labeled", action="store_true", help="store each message's label (topic or cluster)")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("reindex", help="rebuild the duplicate index from the vectors in the database")
    p.add_argument("--reencode", action="store_true",
                   help="first re-encode stored concerns whose vector is missing or from another encoder "
                   "variant (resumable: finished batches are committed)")
    p.add_argument("--dry-run", action="store_true",
                   help="only count stored vectors per encoder name and how many --reencode would redo")
    p.add_argument("--batch-size", type=int, default=64, help="concerns per encoder call and commit")
    p.set_defaults(func=cmd_reindex)

    p = groups["calibrate"].add_parser("dedup", help="fit the same-issue model; writes index/calibration.json")
    _add_cluster_source(p, "calib")
    p.add_argument("--clusters", dest="messages", help="alias of --messages")
    p.add_argument("--no-clusters", action="store_true", help="fit on --pairs only")
    p.add_argument("--pairs", help="extra labelled pairs JSONL {a,b,label}")
    p.add_argument("--merge-precision", type=float, default=0.97)
    p.add_argument("--ask-precision", type=float, default=0.6)
    p.add_argument("--out", help="where to write (default index/calibration.json)")
    p.add_argument("--cv", type=int, metavar="FOLDS",
                   help="only report a leave-clusters-out cross-validation of the recipe; writes nothing")
    p.add_argument("--seed", type=int, default=0, help="fold assignment for --cv")
    p.set_defaults(func=cmd_calibrate)

    p = groups["eval"].add_parser("dedup", help="ROC-AUC/accuracy of cosine vs re-checked score on pairs")
    p.add_argument("--pairs", required=True, help="JSONL {a,b,label}")
    p.add_argument("--limit", type=int, help="only the first N pairs")
    p.add_argument("--calibration", help="calibration file (default index/calibration.json)")
    p.set_defaults(func=cmd_eval_dedup)

    p = groups["eval"].add_parser("clusters", help="replay messages through the real decision; pairwise P/R/F1")
    _add_cluster_source(p, "test")
    p.add_argument("--calibration", help="calibration file (default index/calibration.json)")
    p.set_defaults(func=cmd_eval_clusters)

    p = groups["bench"].add_parser("dedup", help="index build/memory/recall/latency and full decision p95")
    p.add_argument("--n", default="10000,100000,1000000", help="comma-separated index sizes")
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--vectors-from", default=str(DEFAULT_SOURCE),
                   help="messages JSONL whose embeddings shape the drawn vectors (synthetic if missing)")
    p.add_argument("--around-real", type=float, default=0.5,
                   help="draw near random real embeddings with this noise scale; 0.5 matches real cosine "
                   "statistics (median ~0.85, nearest ~0.94); 0: one Gaussian (much harder for HNSW)")
    p.add_argument("--exact-below", type=int, default=int(cfg.get("exact_below", 50000)))
    p.add_argument("--hnsw-m", type=int, default=int(cfg.get("hnsw_m", 32)))
    p.add_argument("--ef-search", type=int, default=int(cfg.get("ef_search", 128)))
    p.add_argument("--ef-construction", type=int, default=40)
    p.add_argument("--decision-n", type=int, default=100000, help="index size for the full decision (0: skip)")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--cold-cache", action="store_true", help="re-extract every candidate's features")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=None,
                   help="time the decision with (--int8) or without (--no-int8) the int8 encoder "
                   "(default: encoder.quantize in intake.yml)")
    p.add_argument("--max-seq-length", type=int, help="encoder token limit for the decision (default: intake.yml)")
    p.add_argument("--threads", type=int, help="encoder threads for the decision (default: intake.yml)")
    p.add_argument("--runtime", choices=["torch", "onnx"], help="encoder runtime for the decision (default: intake.yml)")
    p.set_defaults(func=cmd_bench)

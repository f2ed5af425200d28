"""CLI: `shangliang train-topics` and `shangliang eval topics`."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from bot.config import var_dir

log = logging.getLogger(__name__)


def register(sub, groups) -> None:
    train = sub.add_parser("train-topics", help="train the topic classifier (cached by training-data hash)")
    train.add_argument("--force", action="store_true", help="retrain even when a cached model matches")
    train.add_argument("--no-embeddings", action="store_true", help="lexical features only")
    train.add_argument("--no-db", action="store_true", help="ignore labelled submissions in the database")
    train.set_defaults(func=cmd_train)

    split = sub.add_parser("split-topics", help="make the frozen topic train/test split (id lists, once)")
    split.add_argument("--data", required=True, help="labelled JSONL (id, title?, text, label)")
    split.add_argument("--out", default="evals/splits/topics.json")
    split.add_argument("--test-size", type=float, default=0.3)
    split.add_argument("--seed", type=int, default=20261201)
    split.set_defaults(func=cmd_split)

    ev = groups["eval"].add_parser("topics", help="topic classifier: accuracy, macro-F1, confusion matrix")
    ev.add_argument("--train", required=True, help="labelled JSONL (id, title?, text, label)")
    ev.add_argument("--test", help="labelled JSONL to test on; without it use --cv on --train")
    ev.add_argument("--cv", type=int, default=0, help="k-fold cross-validation on --train")
    ev.add_argument("--split-file", help="frozen split (evals/splits/topics.json): ids of --train's rows")
    ev.add_argument("--use", choices=("train", "test"), default="train",
                    help="with --split-file: 'train' cross-validates inside the train ids (give --cv); 'test' "
                         "trains on the train ids and scores the frozen test ids (run once per choice)")
    ev.add_argument("--bootstrap", type=int, default=0,
                    help="bootstrap 95%% intervals of accuracy and macro-F1 from N resamples of the messages")
    ev.add_argument("--shipped", action="store_true",
                    help="score the product's own model (nlu_data/topics, its taxonomy, no database history) "
                         "on the selected rows, labels mapped through label_map")
    ev.add_argument("--unlabeled", help="unlabelled JSONL (title?, text): vocabulary, and pseudo-labels with "
                                        "--self-train")
    ev.add_argument("--self-train", action="store_true",
                    help="pseudo-label the --unlabeled texts the first model is sure of and train again")
    ev.add_argument("--unlabeled-embeddings", action="store_true",
                    help="encode the unlabelled texts too (cached under var/cache; slow on 2 cores), so "
                         "self-training pseudo-labels with both models and trains both")
    ev.add_argument("--weak-labels", action="store_true",
                    help="label --unlabeled rows whose official `reply` names the departments of one label "
                         "(nlu_data/topics/departments.yml) and train on them too")
    ev.add_argument("--gov-taxonomy", help="category-system JSON (level1 -> level2 -> [level3]): each level-2 "
                                         "node becomes a concept group voting for its level-1 name")
    ev.add_argument("--no-concepts", action="store_true",
                    help="without concept-group features (nlu_data/topics/concepts.yml), for comparison")
    ev.add_argument("--seed", type=int, default=0, help="shuffle seed of the cross-validation folds")
    ev.add_argument("--repeats", type=int, default=1,
                    help="repeat the k-fold with seeds seed, seed+1, ... and report the mean macro-F1 too: one "
                         "split of a few hundred messages moves macro-F1 by about 0.01")
    ev.add_argument("--map-labels", action="store_true",
                    help="map labels onto the product taxonomy (label_map in taxonomy.yml) first")
    ev.add_argument("--no-embeddings", action="store_true", help="lexical features only")
    ev.add_argument("--png", help="confusion-matrix image (default var/eval/topics_confusion.png)")
    ev.set_defaults(func=cmd_eval)


def cmd_train(args: argparse.Namespace) -> int:
    from bot.topics.service import train_classifier, train_with_history

    started = time.time()
    if args.no_db:
        model, cached = train_classifier(None, use_embeddings=not args.no_embeddings, force=args.force)
    else:
        model, cached = train_with_history(use_embeddings=not args.no_embeddings, force=args.force)
    print(json.dumps({"labels": len(model.classes_), "hash": model.data_hash, "cached": cached,
                      "embeddings": model.uses_embeddings, "seconds": round(time.time() - started, 1)},
                     ensure_ascii=False))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from bot.topics.data import read_jsonl
    from bot.topics.splits import make_split, write_split

    rows = [r for r in read_jsonl(args.data) if r.get("label") not in (None, "")]
    split = make_split([str(r["id"]) for r in rows], [str(r["label"]) for r in rows], args.test_size, args.seed)
    write_split(split, args.out, Path(args.data).name)
    print(json.dumps({"out": args.out, "train": len(split["train"]), "test": len(split["test"])}))
    return 0


def _rows(path: str, split_file: str | None, part: str) -> list[dict]:
    from bot.topics.data import read_jsonl
    from bot.topics.splits import load_split, select

    rows = read_jsonl(path)
    return select(rows, load_split(split_file), part) if split_file else rows


def _dataset(path: str, map_labels: bool, use_embeddings: bool, split_file: str | None = None,
             part: str = "train"):
    from bot.topics.data import Example, message_text
    from bot.topics.embeddings import embed_concerns
    from bot.topics.evaluate import Dataset
    from bot.topics.taxonomy import default_taxonomy

    examples = [Example(message_text(r["text"], r.get("title")), str(r["label"]))
                for r in _rows(path, split_file, part) if r.get("label") not in (None, "")]
    labels = [e.label for e in examples]
    if map_labels:
        taxonomy = default_taxonomy()
        labels = [taxonomy.map_label(label) or taxonomy.fallback for label in labels]
    texts = [e.text for e in examples]
    return Dataset(texts, labels, embed_concerns(texts) if use_embeddings else None)


def _concepts(args: argparse.Namespace):
    """The concept groups the classifier uses: the project's lexicon and/or a category system's names."""
    from bot.topics.concepts import groups_from_category_system, load_concepts

    groups = [] if args.no_concepts else load_concepts()
    if args.gov_taxonomy:
        groups += groups_from_category_system(args.gov_taxonomy)
    return groups


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.topics.classifier import ClassifierConfig
    from bot.topics.data import message_text, read_jsonl
    from bot.topics.embeddings import embed_concerns
    from bot.topics.evaluate import Unlabeled, cross_validate, save_confusion_png, train_test

    if args.shipped:
        return _eval_shipped(args)
    frozen_test = bool(args.split_file) and args.use == "test"
    if args.test and args.split_file:
        raise SystemExit("--test and --split-file exclude each other")
    if not (args.test or frozen_test) and args.cv < 2:
        raise SystemExit("give --test B.jsonl, --split-file F --use test, or --cv K (K >= 2) to cross-validate")
    started = time.time()
    use_emb = not args.no_embeddings
    train = _dataset(args.train, args.map_labels, use_emb, args.split_file, "train")
    if train.vectors is None:
        use_emb = False
    concepts = _concepts(args)
    config = ClassifierConfig(self_train=args.self_train)
    extra = None
    unlabeled = None
    weak = 0
    if args.unlabeled:
        rows = read_jsonl(args.unlabeled)
        if args.weak_labels:
            from bot.topics.evaluate import Dataset
            from bot.topics.weak import weak_labels

            labelled = weak_labels(rows, set(train.labels))
            weak = len(labelled)
            weak_texts = {e.text for e in labelled}
            extra_texts = (extra.texts if extra else []) + [e.text for e in labelled]
            extra_labels = (extra.labels if extra else []) + [e.label for e in labelled]
            extra = Dataset(extra_texts, extra_labels, None)
            use_emb = False if labelled and use_emb else use_emb  # no vectors for the weak rows
            rows = [r for r in rows if message_text(r["text"], r.get("title")) not in weak_texts]
        texts = [message_text(r["text"], r.get("title")) for r in rows]
        # By default lexical only: encoding thousands of long texts costs many minutes on 2 cores.
        unlabeled = Unlabeled(texts, embed_concerns(texts) if use_emb and args.unlabeled_embeddings else None)
    if not use_emb:
        train.vectors = None
    if args.test or frozen_test:
        if frozen_test:
            test = _dataset(args.train, args.map_labels, use_emb, args.split_file, "test")
        else:
            test = _dataset(args.test, args.map_labels, use_emb)
        if not use_emb:
            test.vectors = None
        result = train_test(train, test, extra=extra, unlabeled=unlabeled, config=config, concepts=concepts,
                            bootstrap=args.bootstrap)
        result["mode"] = "frozen_test" if frozen_test else "train_test"
    else:
        runs = [cross_validate(train, folds=args.cv, extra=extra, unlabeled=unlabeled, config=config,
                               seed=args.seed + r, concepts=concepts, bootstrap=args.bootstrap if r == 0 else 0)
                for r in range(max(1, args.repeats))]
        result = runs[0]  # per-class figures and the confusion matrix are the first seed's
        result["mode"] = f"cv{args.cv}"
        if len(runs) > 1:
            scores = np.array([r["macro_f1"] for r in runs])
            result["repeats"] = [{"seed": args.seed + i, "macro_f1": r["macro_f1"], "accuracy": r["accuracy"]}
                                 for i, r in enumerate(runs)]
            result["macro_f1_mean"] = round(float(scores.mean()), 4)
            result["macro_f1_std"] = round(float(scores.std()), 4)
    png = Path(args.png) if args.png else var_dir() / "eval" / "topics_confusion.png"
    font = save_confusion_png(result, png)
    result.update({"embeddings": use_emb, "self_training": bool(unlabeled) and args.self_train, "concept_groups": len(concepts),
                   "category_system": bool(args.gov_taxonomy), "weak_labels": weak,
                   "confusion_png": str(png), "cjk_font": font, "seconds": round(time.time() - started, 1)})
    result["split"] = {"file": args.split_file, "part": args.use} if args.split_file else None
    _print(result)
    if "macro_f1_mean" in result:
        each = " / ".join(f"{r['macro_f1']:.4f}" for r in result["repeats"])
        print(f"repeated {args.cv}-fold, {len(result['repeats'])} seeds: macro-F1 mean {result['macro_f1_mean']:.4f} "
              f"(each {each})")
    for label, f1 in result["per_class_f1"].items():
        print(f"  {label:<12} F1 {f1:.4f}")
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _print(result: dict) -> None:
    line = f"accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}"
    if "macro_f1_95ci" in result:
        (al, ah), (fl, fh) = result["accuracy_95ci"], result["macro_f1_95ci"]
        line += f"  (bootstrap 95%: accuracy {al:.3f}-{ah:.3f}, macro-F1 {fl:.3f}-{fh:.3f})"
    print(line)


def _eval_shipped(args: argparse.Namespace) -> int:
    """The model the product runs, trained as `train-topics --no-db` trains it, scored on mapped labels."""
    from bot.topics.evaluate import save_confusion_png, shipped_on
    from bot.topics.service import train_classifier

    started = time.time()
    use_emb = not args.no_embeddings
    model, _ = train_classifier(None, use_embeddings=use_emb)
    test = _dataset(args.train, True, model.uses_embeddings, args.split_file, args.use)
    result = shipped_on(test, model, bootstrap=args.bootstrap)
    png = Path(args.png) if args.png else var_dir() / "eval" / "topics_shipped_confusion.png"
    result.update({"mode": "shipped", "model_labels": len(model.classes_), "embeddings": model.uses_embeddings,
                   "split": {"file": args.split_file, "part": args.use} if args.split_file else None,
                   "confusion_png": str(png), "cjk_font": save_confusion_png(result, png, "Shipped topic model"),
                   "seconds": round(time.time() - started, 1)})
    _print(result)
    print(json.dumps(result, ensure_ascii=False))
    return 0

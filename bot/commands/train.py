"""`shangliang train`: train the Rasa model only when its training data changed.

Models are cached by a hash of everything that shapes them (config, domain, NLU/stories/rules, the jieba
dictionary, the Rasa version, and, when the pipeline uses `bot.nlu`'s encoder features, the encoder whose
vectors the NLU reads: its variant, a digest of its weights and the code that turns text into features),
so a second `make run` or test session reuses the same file, and a model trained on other vectors is never
reused.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bot.config import REPO_ROOT

log = logging.getLogger(__name__)

RASA_DATA_DIRS = ["nlu_data/nlu", "nlu_data/stories", "nlu_data/rules"]
HASHED_PATHS = ["config.yml", "domain.yml", *RASA_DATA_DIRS, "nlu_data/jieba"]


def model_cache_dir() -> Path:
    """Trained models are pure functions of the hashed inputs, so one cache can serve every checkout."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shangliang" / "rasa-models"
    path = Path(os.environ.get("SHANGLIANG_MODEL_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _hash_paths(digest: Any, root: Path, paths: list[str]) -> None:
    for rel in paths:
        path = root / rel
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if path.is_dir() else [path]
        for file in files:
            if file.exists():
                digest.update(str(file.relative_to(root)).encode())
                digest.update(file.read_bytes())


def training_data_hash(root: Path = REPO_ROOT) -> str:
    digest = hashlib.sha256()
    try:
        import rasa

        digest.update(f"rasa={rasa.__version__}".encode())
    except ImportError:  # pragma: no cover - rasa is always installed with the project
        pass
    _hash_paths(digest, root, HASHED_PATHS)
    if uses_encoder_features(root):
        from bot.nlu.vectors import feature_fingerprint

        digest.update(feature_fingerprint(root).encode())
    return digest.hexdigest()[:16]


def uses_encoder_features(root: Path = REPO_ROOT) -> bool:
    """Whether config.yml's pipeline has a component from bot.nlu (only then do the encoder's vectors shape
    the model; without one, encoder changes must not force a retrain)."""
    import yaml

    try:
        config = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    return any(str(step.get("name", "")).startswith("bot.nlu.") for step in config.get("pipeline") or []
               if isinstance(step, dict))


def trained_model_path(root: Path = REPO_ROOT) -> Path:
    return model_cache_dir() / f"shangliang-{training_data_hash(root)}.tar.gz"


def ensure_model(force: bool = False, root: Path = REPO_ROOT) -> Path:
    """Return the cached model for the current data, training it first if needed."""
    target = trained_model_path(root)
    if target.exists() and not force:
        log.info("Rasa model is up to date: %s", target)
        return target
    # Several checkouts (and a test run beside `make run`) share the cache: the second to ask for the same
    # model waits for the first instead of training it again on the same two cores.
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and not force:
            log.info("Rasa model trained meanwhile by another process: %s", target)
            return target
        return _train(target, root)


def _train(target: Path, root: Path) -> Path:
    out_dir = target.parent / f"tmp-{target.stem}-{os.getpid()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "rasa", "train",
        "--data", *RASA_DATA_DIRS,
        "--config", "config.yml", "--domain", "domain.yml",
        "--out", str(out_dir), "--fixed-model-name", "model",
    ]
    log.info("Training the Rasa model (the data changed; this takes a few minutes)...")
    started = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "TF_CPP_MIN_LOG_LEVEL": "2", "RASA_TELEMETRY_ENABLED": "false"}
    result = subprocess.run(cmd, cwd=root, env=env)
    if result.returncode != 0:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise RuntimeError(f"rasa train failed with exit code {result.returncode}")
    produced = out_dir / "model.tar.gz"
    os.replace(produced, target)  # atomic: a half-written model is never picked up
    shutil.rmtree(out_dir, ignore_errors=True)
    log.info("Trained in %.0f s: %s", time.monotonic() - started, target)
    return target


def ensure_topic_model() -> None:
    """Train the topic classifier now (cached by data hash) so the first filed case does not wait for it."""
    from bot.topics.service import train_with_history

    model, cached = train_with_history()
    log.info("Topic classifier %s (%d topics)", "is up to date" if cached else "trained", len(model.classes_))


def _run(args: argparse.Namespace) -> int:
    if args.print_path:
        print(trained_model_path())
        return 0
    path = ensure_model(force=args.force)
    if not args.rasa_only:
        ensure_topic_model()
    print(path)
    return 0


def register(sub: argparse._SubParsersAction, groups: dict) -> None:
    parser = sub.add_parser("train", help="train the Rasa model (cached by data hash) and the topic classifier")
    parser.add_argument("--force", action="store_true", help="train even if a cached model matches")
    parser.add_argument("--rasa-only", action="store_true", help="only the Rasa model")
    parser.add_argument("--print-path", action="store_true", help="print where the model for this data lives")
    parser.set_defaults(func=_run)

"""The held-out long stories and `shangliang eval concerns`: kept apart from training, scored plainly."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.cli import build_parser
from bot.commands.eval_concerns import DEFAULT_STORIES, load_stories, score

ROOT = Path(__file__).resolve().parent.parent


def _training_texts() -> list[str]:
    texts = []
    for path in (ROOT / "nlu_data" / "nlu").glob("*.yml"):
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            texts += [line[2:].strip() for line in str(block.get("examples", "")).splitlines()
                      if line.startswith("- ")]
    return texts


def test_held_out_stories_are_long_and_never_in_training() -> None:
    stories = load_stories(DEFAULT_STORIES)
    assert len(stories) >= 80
    assert len({s["id"] for s in stories}) == len(stories)
    assert all(100 <= len(s["text"]) <= 700 for s in stories)
    training = "\n".join(_training_texts())
    # No story, nor any 20-character stretch of one, appears in the training data.
    for story in stories:
        text = story["text"]
        assert not any(text[i:i + 20] in training for i in range(0, len(text) - 20, 10)), story["id"]


def test_score_counts_what_opens_the_form() -> None:
    result = score([("a", "report_concern"), ("b", "give_suggestion"), ("c", "inform"), ("d", "report_concern")])
    assert result["stories"] == 4 and result["recognised_share"] == 0.75 and result["concern_share"] == 0.5
    assert result["missed"] == ["c"] and result["intents"]["report_concern"] == 2


def test_eval_concerns_is_registered() -> None:
    args = build_parser().parse_args(["eval", "concerns", "--rasa-url", "http://127.0.0.1:1"])
    assert args.func.__module__ == "bot.commands.eval_concerns"

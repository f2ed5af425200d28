"""Rasa training data: clean validation, enough varied examples, safe slot mappings, core test stories."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RASA = str(Path(sys.executable).with_name("rasa"))
ENV = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2", RASA_TELEMETRY_ENABLED="false")
# The same folders `shangliang train` trains on (nlu_data/topics is not Rasa data).
RASA_DATA_DIRS = ["nlu_data/nlu", "nlu_data/stories", "nlu_data/rules"]
MAIN_INTENTS = ("report_concern", "give_suggestion", "ask_progress", "inform")


def _nlu_examples() -> dict[str, list[str]]:
    examples: dict[str, list[str]] = {}
    for path in sorted((ROOT / "nlu_data" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            if "intent" in block:
                lines = [line[2:].strip() for line in block["examples"].splitlines() if line.startswith("- ")]
                examples.setdefault(block["intent"], []).extend(lines)
    return examples


def _domain() -> dict:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def test_rasa_data_validate_is_clean() -> None:
    result = subprocess.run(
        [RASA, "data", "validate", "--data", *RASA_DATA_DIRS, "--config", "config.yml", "--domain", "domain.yml",
         "--fail-on-warnings"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    # Rasa reports every response that no story or rule names as unused; the custom actions dispatch
    # theirs by name (resident wording lives in domain.yml), so only those are accepted, nothing else.
    dispatched = _responses_dispatched_by_actions()
    unused = re.compile(r"The utterance '(\w+)' is not used in any story or rule")
    rasa_warnings = [line for line in output.splitlines()
                     if ("UserWarning" in line or "is not used" in line or "not listed" in line)
                     and not (unused.search(line) and unused.search(line).group(1) in dispatched)]
    assert not rasa_warnings, "\n".join(rasa_warnings)


def _responses_dispatched_by_actions() -> set[str]:
    """Response names quoted in actions/*.py, plus the form's `utter_ask_<slot>` (asking.py)."""
    names: set[str] = set()
    for path in (ROOT / "actions").glob("*.py"):
        names |= set(re.findall(r'"(utter_\w+)"', path.read_text(encoding="utf-8")))
    names.discard("utter_action")  # the metadata key Rasa stores a response's name under, not a response
    slots = _domain()["forms"]["concern_form"]["required_slots"]
    return names | {f"utter_ask_{slot}" for slot in slots}


def test_every_response_an_action_dispatches_is_in_the_domain() -> None:
    responses = set(_domain()["responses"])
    missing = _responses_dispatched_by_actions() - responses
    assert not missing, sorted(missing)
    # And the actions carry no resident wording of their own: every message goes through a response.
    for path in (ROOT / "actions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "utter_message(text=" not in source, path.name


CHANNEL_INTENTS = {"start_campaign", "share_media", "share_location"}


def test_every_domain_intent_has_enough_unique_examples() -> None:
    examples = _nlu_examples()
    for intent in _domain()["intents"]:
        found = examples.get(intent, [])
        assert len(found) == len(set(found)), f"{intent} has duplicate examples"
        # Channel intents arrive as /start_campaign{...} or /share_media from the WeChat channels and the
        # web chat page; a few typed examples are enough for residents who say them in words.
        minimum = 60 if intent in MAIN_INTENTS else 5 if intent in CHANNEL_INTENTS else 30
        assert len(found) >= minimum, f"{intent}: {len(found)} examples, need {minimum}"


def test_no_example_is_labelled_with_two_intents() -> None:
    seen: dict[str, str] = {}
    for intent, lines in _nlu_examples().items():
        for line in lines:
            assert seen.setdefault(line, intent) == intent, f"{line!r}: {seen[line]} and {intent}"


def test_free_text_slots_are_only_filled_while_the_form_asks_for_them() -> None:
    for name, slot in _domain()["slots"].items():
        for mapping in slot.get("mappings", []):
            if mapping["type"] == "from_entity" and mapping.get("intent") in CHANNEL_INTENTS:
                continue  # set only by the channel's own intent (e.g. the campaign of a QR scan)
            if mapping["type"] in ("from_text", "from_entity"):
                conditions = mapping.get("conditions") or []
                assert conditions, f"slot {name}: {mapping['type']} without conditions"
                assert all(c.get("requested_slot") == name for c in conditions), name


def test_jieba_dictionary_is_a_directory_with_a_dictionary() -> None:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    jieba = next(c for c in config["pipeline"] if c["name"] == "JiebaTokenizer")
    folder = ROOT / jieba["dictionary_path"]
    assert folder.is_dir()
    entries = [line.split() for path in folder.glob("*.txt")
               for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert entries and all(len(e) in (1, 2, 3) for e in entries)


@pytest.mark.slow
def test_core_stories_pass_against_the_trained_model(rasa_model: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [RASA, "test", "core", "--stories", "tests/stories", "--model", str(rasa_model),
         "--out", str(tmp_path), "--no-plot"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    failed = (tmp_path / "failed_test_stories.yml").read_text(encoding="utf-8")
    assert "- story:" not in failed, failed
    assert (tmp_path / "story_report.json").exists()

"""bot/rasa_server.py: Rasa's action-response check, with the validator built once."""

from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from bot import rasa_server

GOOD = {
    "events": [{"event": "slot", "name": "awaiting", "value": "confirm"}, {"event": "action",
                                                                             "name": "action_listen"}],
    "responses": [{"response": "utter_ask_place", "buttons": [], "text": None}],
}


@pytest.fixture
def patched():
    original = RemoteAction._validate_action_result
    rasa_server.install()
    yield RemoteAction(name="action_x", action_endpoint=None)
    RemoteAction._validate_action_result = original


def test_valid_response_passes_like_rasa(patched):
    assert patched._validate_action_result(GOOD) is True
    # Rasa's own (unpatched) check agrees
    jsonschema.validate(GOOD, RemoteAction.action_response_format_spec())


@pytest.mark.parametrize("bad", [
    {"events": "not a list"},
    {"events": [{"no_event_key": 1}]},
    {"responses": [1, 2]},
])
def test_invalid_response_still_raises_with_rasa_hint(patched, bad):
    with pytest.raises(jsonschema.ValidationError) as err:
        patched._validate_action_result(bad)
    assert "Failed to validate Action server response" in err.value.message
    with pytest.raises(jsonschema.ValidationError):  # and Rasa's own check agrees it is bad
        jsonschema.validate(bad, RemoteAction.action_response_format_spec())


def test_validator_is_built_once(patched):
    patched._validate_action_result(GOOD)
    patched._validate_action_result(GOOD)
    assert rasa_server._action_result_validator.cache_info().misses == 1


def test_supervisor_starts_rasa_through_the_launcher(tmp_path):
    from bot.supervisor import Ports, Stack

    stack = Stack(var_dir=tmp_path, ports=Ports(rasa=1, actions=2, intake=3), model_path=tmp_path / "m.tar.gz")
    assert stack.commands()["rasa"][1:4] == ["-m", "bot.rasa_server", "run"]

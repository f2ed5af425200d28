"""Start Rasa's own CLI (`python -m bot.rasa_server run ...`) with the project's fixes for known waste.

Rasa 3.6 validates every action-server response with `jsonschema.validate(result, schema)`, which checks
the (constant) schema against its meta-schema and builds a fresh validator on every call: in the load
profile that was about half of the Rasa process's CPU (`RemoteAction._validate_action_result`). Here the
validator is built once; responses are validated exactly as before and a bad one still raises
`jsonschema.ValidationError` with Rasa's hint appended.

Everything else is Rasa unchanged: the arguments are Rasa's.
"""

from __future__ import annotations

import functools
import sys
from typing import Any


@functools.lru_cache(maxsize=1)
def _action_result_validator() -> Any:
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)  # once, as jsonschema.validate would on every call
    return cls(schema)


def _validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    from jsonschema import ValidationError
    from rasa.shared.constants import DOCS_BASE_URL

    try:
        _action_result_validator().validate(result)
        return True
    except ValidationError as e:  # the same message Rasa gives
        e.message += (
            ". Failed to validate Action server response from API, make sure your response from the Action "
            f"endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise e


def install() -> None:
    """Apply the fixes to the Rasa classes of this process (idempotent)."""
    from rasa.core.actions.action import RemoteAction

    RemoteAction._validate_action_result = _validate_action_result


def main(argv: list[str] | None = None) -> None:
    install()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *(sys.argv[1:] if argv is None else argv)]
    rasa_main()


if __name__ == "__main__":
    main()

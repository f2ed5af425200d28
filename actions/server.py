"""The action server: `python -m actions.server` takes rasa_sdk's arguments and runs rasa_sdk's server with
one addition, the spool replayer (actions/replay.py) as a background task on the server's event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pluggy

logger = logging.getLogger(__name__)

hookimpl = pluggy.HookimplMarker("rasa_sdk")


class SpoolReplayPlugin:
    """rasa_sdk plugin hook (rasa_sdk.plugin): Sanic listeners that start and stop the replayer."""

    @hookimpl
    def attach_sanic_app_extensions(self, app: Any) -> None:
        state: dict[str, Any] = {}

        async def start(app: Any, loop: asyncio.AbstractEventLoop) -> None:
            from actions.replay import replay_forever

            state["stop"] = asyncio.Event()
            state["task"] = loop.create_task(replay_forever(state["stop"]))
            logger.info("spool replayer started")

        async def stop(app: Any, loop: asyncio.AbstractEventLoop) -> None:
            if "stop" in state:
                state["stop"].set()
                try:
                    await asyncio.wait_for(state["task"], timeout=3)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    pass

        app.register_listener(start, "after_server_start")
        app.register_listener(stop, "before_server_stop")


def main() -> None:
    from rasa_sdk.__main__ import main as rasa_sdk_main
    from rasa_sdk.plugin import plugin_manager

    plugin_manager().register(SpoolReplayPlugin())
    rasa_sdk_main()


if __name__ == "__main__":
    main()

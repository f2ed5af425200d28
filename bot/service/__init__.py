"""The intake service (aiohttp): REST API, web chat page, metrics. `create_app()` is in bot.service.app."""

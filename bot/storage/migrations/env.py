"""Alembic environment: uses the connection handed over by bot.storage.db.upgrade(), else the URL."""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import create_engine, pool

from bot.storage.models import Base

# Other parts declare their tables on the same Base; import them so autogenerate sees everything.
for _module in ("bot.routing.models", "bot.channels.models", "bot.workflow.models", "bot.accounts.models"):
    try:
        importlib.import_module(_module)
    except ImportError:
        pass

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from bot.config import database_url

        url = database_url()
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

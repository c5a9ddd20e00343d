"""Alembic environment for the provisioning schema.

Used two ways: `provisioning.migrate.upgrade(engine)` hands its connection in
(`config.attributes["connection"]`), and the `alembic` command line connects
to `VOIPLAB_DB` or `sqlalchemy.url` from alembic.ini. SQLite needs batch mode
(ALTER TABLE is limited there), so it is always on.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from provisioning import models  # noqa: F401  (registers the tables)
from provisioning.db import normalise_url

config = context.config
target_metadata = SQLModel.metadata


def _configure(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True, compare_server_default=True)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = normalise_url(os.environ.get("VOIPLAB_DB") or config.get_main_option("sqlalchemy.url") or "")
    engine = create_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()

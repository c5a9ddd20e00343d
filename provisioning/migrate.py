"""Run the alembic migrations from code (start-up, tests, bulk tools).

`upgrade(engine)` handles three kinds of database:
- empty: every migration from the first;
- made by issue #2's `create_all` (tables, no `alembic_version`): stamped at
  0001, the #2 schema, then upgraded, so `make run` data survives;
- already migrated: upgraded to head (a no-op when current).

SQLite foreign keys are switched off while migrating: batch migrations
rebuild tables, and a rebuilt parent table must not cascade into its
children; `PRAGMA foreign_key_check` afterwards proves nothing was broken.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
ISSUE2_REVISION = "0001"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        tables = set(inspect(conn).get_table_names())
        cfg = alembic_config(conn)
        if "alembic_version" not in tables and "account" in tables:
            command.stamp(cfg, ISSUE2_REVISION)
        command.upgrade(cfg, revision)
        conn.commit()
        if sqlite:
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            if broken:
                raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")


def downgrade(engine: Engine, revision: str) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        command.downgrade(alembic_config(conn), revision)
        conn.commit()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if "alembic_version" not in inspect(conn).get_table_names():
            return None
        row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        return str(row[0]) if row else None

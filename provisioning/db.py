"""Database engine and schema setup.

SQLite is the default (one file, WAL so the API threads and the CDR writer
thread can read while one writes; a busy timeout instead of instant
"database is locked"). `--db postgresql://…` selects PostgreSQL through the
psycopg 3 driver. The schema is built and upgraded by alembic migrations
(`provisioning/migrations`, see `provisioning.migrate`); `create_all_for_tests`
remains for comparing the migrated schema with the models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel, create_engine

SQLITE_BUSY_TIMEOUT_MS = 10_000


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type and PostgreSQL's `timestamptz` returns aware
    values, so left alone the two backends disagree. We store naive UTC and
    hand back aware UTC; naive input is refused (it hides clock mistakes).
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use the injected UTC clock")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalise_url(url: str) -> str:
    """Map plain PostgreSQL URLs to the psycopg 3 driver SQLAlchemy needs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str = "sqlite:///voiplab.db", *, echo: bool = False) -> Engine:
    """Create an engine tuned for the backend named by `url`.

    A PostgreSQL schema can be selected with libpq options in the URL, e.g.
    `postgresql://u@h/db?options=-csearch_path%3Dlab1`.
    """
    url = normalise_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url
        kwargs["connect_args"] = {"check_same_thread": False}
        if memory:
            # One shared connection, else every thread sees its own empty database.
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, wal=not memory)
        return engine
    kwargs["pool_pre_ping"] = True
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


#: The audit log is append-only in the database itself, not only by convention.
#: Migration 0002 carries its own frozen copy of these statements.
APPEND_ONLY_TRIGGERS: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
        "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    ),
    "postgresql": (
        "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$",
        "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
    ),
}


def init_db(engine: Engine) -> None:
    """Bring the schema to the newest migration (empty, #2-era or older databases)."""
    from provisioning.migrate import upgrade

    upgrade(engine)


def create_all_for_tests(engine: Engine) -> None:
    """The schema straight from the models (plus the audit triggers), without
    migrations: only to prove that the migrations build the same thing."""
    from provisioning import models  # noqa: F401  (registers the tables on SQLModel.metadata)

    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        for statement in APPEND_ONLY_TRIGGERS.get(engine.dialect.name, ()):
            conn.exec_driver_sql(statement)


def utc_now() -> datetime:
    """The real UTC clock, for the composition root to inject; services never call it."""
    return datetime.now(UTC)

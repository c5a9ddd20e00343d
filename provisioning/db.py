"""Database engine and schema setup.

SQLite is the default (one file, WAL so the API threads and the CDR writer
thread can read while one writes; a busy timeout instead of instant
"database is locked"). `--db postgresql://…` selects PostgreSQL through the
psycopg 3 driver. Schema creation is `create_all` for now; alembic migrations
arrive with issue #3 (when the schema starts to change under live data).
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


def init_db(engine: Engine) -> None:
    """Create missing tables. TODO(#3): replace with alembic migrations."""
    from provisioning import models  # noqa: F401  (registers the tables on SQLModel.metadata)

    SQLModel.metadata.create_all(engine)


def utc_now() -> datetime:
    """The real UTC clock, for the composition root to inject; services never call it."""
    return datetime.now(UTC)

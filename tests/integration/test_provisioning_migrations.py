"""Alembic migrations against SQLite and PostgreSQL: empty → head gives exactly
the models' schema; a database made by issue #2 (create_all, no version table)
is stamped and upgraded with its data kept; the audit log is append-only in
the database; head → 0001 → head round-trips."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from provisioning import migrate
from provisioning.db import create_all_for_tests, init_db, make_engine
from tests import conftest_db

empty_db_url = conftest_db.empty_db_url
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC).replace(tzinfo=None)
#: the newest revision (each issue adds one; the tests follow it instead of naming it)
HEAD = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[Engine]:
    e = make_engine(empty_db_url)
    yield e
    e.dispose()


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, SQLModel.metadata))


def triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        else:
            rows = conn.execute(text("SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                                     "WHERE c.relname = 'audit_event' AND NOT t.tgisinternal "
                                     "AND c.relnamespace = current_schema()::regnamespace"))
        return {r[0] for r in rows}


def test_empty_to_head_matches_the_models(engine: Engine) -> None:
    assert migrate.current(engine) is None
    init_db(engine)
    assert migrate.current(engine) == HEAD
    assert schema_diff(engine) == []
    assert triggers(engine) and triggers(engine) == _model_triggers(engine)
    init_db(engine)  # idempotent
    assert migrate.current(engine) == HEAD


def _model_triggers(engine: Engine) -> set[str]:
    """Triggers of a schema made straight from the models, in a second database/schema."""
    schema = f"voiplab_models_{secrets.token_hex(4)}"
    if engine.dialect.name == "sqlite":
        other = make_engine("sqlite://")
    else:
        with psycopg.connect(conftest_db.pg_base_url(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        other = make_engine(conftest_db._with_search_path(conftest_db.pg_base_url(), schema))
    try:
        create_all_for_tests(other)
        assert schema_diff(other) == []
        return triggers(other)
    finally:
        other.dispose()
        if engine.dialect.name != "sqlite":
            with psycopg.connect(conftest_db.pg_base_url(), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_issue2_database_is_stamped_and_upgraded_with_its_data(engine: Engine) -> None:
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:  # what #2's create_all left behind: no version table
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("INSERT INTO account (id, name, plan, region, status, created_at) "
                          "VALUES (1, 'old', 'connect', 'US', 'active', :t)"), {"t": NOW})
        conn.execute(text('INSERT INTO "user" (id, account_id, named_user_id, display_name, extension, '
                          "created_at) VALUES (1, 1, 'ann.old@x.example', 'Ann', '10', :t)"), {"t": NOW})
        conn.execute(text("INSERT INTO device (id, account_id, hardware_profile, name, mac, kind, state, "
                          "created_at) VALUES (1, 1, 'yealink-t54w', 'desk', '001565000001', 'desk', 'active', :t)"),
                     {"t": NOW})
        conn.execute(text('INSERT INTO line (id, device_id, user_id, "index", sip_username, realm, ha1_md5, '
                          "ha1_sha256, created_at, password_set_at) VALUES (1, 1, 1, 1, '10-abcdef', 'x', "
                          "'m', 's', :t, :t)"), {"t": NOW})
    init_db(engine)
    assert migrate.current(engine) == HEAD and schema_diff(engine) == []
    with engine.connect() as conn:
        acc = conn.execute(text("SELECT deposit_usd, allowed_prefixes, flex_minimum FROM account")).one()
        dev = conn.execute(text("SELECT kind, transport, ua_policy, codecs FROM device")).one()
        line = conn.execute(text("SELECT credential_generation, purpose, port, sip_username FROM line")).one()
        user = conn.execute(text('SELECT kind FROM "user"')).one()
    assert acc[0] == 0 and acc[1] in ([], "[]") and acc[2] is None
    assert (dev[0], dev[1], dev[2]) == ("desk_phone", "udp", "flag")
    assert (line[0], line[1], line[2], line[3]) == (1, "voice", None, "10-abcdef")
    assert user[0] == "person"


def test_audit_log_is_append_only_in_the_database(engine: Engine) -> None:
    init_db(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_event (at, actor, action, entity, detail) "
                          "VALUES (:t, 'x', 'a', 'account', '{}')"), {"t": NOW})
    for statement in ("UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT actor FROM audit_event")).scalar_one() == "x"


def test_downgrade_and_upgrade_again(engine: Engine) -> None:
    init_db(engine)
    migrate.downgrade(engine, "0001")
    assert migrate.current(engine) == "0001"
    assert "licence" not in inspect(engine).get_table_names()
    init_db(engine)
    assert migrate.current(engine) == HEAD and schema_diff(engine) == []


def test_e911_upgrade_keeps_locations_and_accounts(engine: Engine) -> None:
    """0004: locations stored before validation existed read as `unchecked` (validated again when
    a device binds them); accounts get the default stale-location policy and no webhook."""
    migrate.upgrade(engine, "0003_cdr_rating")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO account (id, name, plan, region, status, created_at) "
                          "VALUES (1, 'old', 'connect', 'US', 'active', :t)"), {"t": NOW})
        conn.execute(text("INSERT INTO location (id, account_id, country, callback_number, created_at) "
                          "VALUES (1, 1, 'US', '+15125550100', :t)"), {"t": NOW})
    init_db(engine)
    assert migrate.current(engine) == HEAD and schema_diff(engine) == []
    with engine.connect() as conn:
        place = conn.execute(text("SELECT validation_status, validation_problems, site_needs, country "
                                  "FROM location")).one()
        acc = conn.execute(text("SELECT stale_policy, notification_url FROM account")).one()
    assert place[0] == "unchecked" and place[1] in ([], "[]") and place[2] in ({}, "{}") and place[3] == "US"
    assert (acc[0], acc[1]) == ("use_last", None)
    migrate.downgrade(engine, "0003_cdr_rating")
    assert "device_e911" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT country FROM location")).scalar_one() == "US"

"""CDR store: batch writes in one transaction, validation before touching the DB, queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from provisioning.cdrs import CdrStore
from provisioning.db import init_db, make_engine
from provisioning.schemas import CdrIn
from tests.conftest_db import sqlite_url  # noqa: F401

T0 = datetime(2025, 5, 1, 9, 0, 0, tzinfo=UTC)


def rec(i: int, **kw: Any) -> dict[str, Any]:
    return {"account_id": 1, "call_id": f"call-{i}", "caller": "sip:1001@lab", "callee": "sip:1002@lab",
            "start": T0 + timedelta(seconds=i), "end": T0 + timedelta(seconds=i + 5),
            "disposition": "no-answer", "sip_code": 480, **kw}


@pytest.fixture
def store(sqlite_url: str) -> Iterator[CdrStore]:  # noqa: F811
    engine = make_engine(sqlite_url)
    init_db(engine)
    yield CdrStore(engine)
    engine.dispose()


def test_batch_of_dicts_and_models(store: CdrStore) -> None:
    batch: list[Any] = [rec(i) for i in range(50)]
    batch.append(CdrIn(**rec(50, disposition="answered", sip_code=200, answer=T0, duration_s=3.5)))
    assert store.write_many(batch) == 51
    assert store.write_many([]) == 0
    rows = store.list(account_id=1, limit=1000)
    assert len(rows) == 51 and rows[0].call_id == "call-50"  # newest first
    assert rows[0].duration_s == 3.5 and rows[0].answer == T0
    assert rows[0].start.tzinfo is not None
    assert [r.call_id for r in store.list(disposition="answered")] == ["call-50"]
    assert len(store.list(account_id=1, limit=10, offset=45)) == 6
    assert store.list(account_id=2) == []


@pytest.mark.parametrize("bad", [
    {"disposition": "hung-up"},
    {"start": datetime(2025, 5, 1, 9, 0, 0)},  # naive
    {"duration_s": -1.0},
    {"sip_code": 99},
    {"call_id": ""},
    {"surprise": 1},
])
def test_invalid_record_fails_the_batch_before_writing(store: CdrStore, bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        store.write_many([rec(1), rec(2, **bad)])
    assert store.list() == []


def test_long_strings_are_clipped_not_lost(store: CdrStore) -> None:
    long_uri = "sip:" + "x" * 400 + "@lab"
    store.write_many([rec(1, callee=long_uri, reason="r" * 300, gateway_node="n" * 100)])
    (row,) = store.list()
    assert row.callee == long_uri[:255] and len(row.reason or "") == 255 and len(row.gateway_node or "") == 64

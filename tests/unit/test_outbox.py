"""The CDR writer: off-loop batches, nothing lost on close, a bad record drops alone."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.outbox import BatchWriter
from provisioning.cdrs import CdrStore
from provisioning.db import init_db, make_engine


def record(i: int, **over: Any) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base = {"account_id": 1, "call_id": f"c{i}", "caller": "a", "callee": "b", "start": now, "end": now,
            "duration_s": 0.0, "disposition": "rejected", "sip_code": 404, "reason": "Not Found"}
    base.update(over)
    return base


def test_everything_queued_is_written_on_close(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    init_db(engine)
    store = CdrStore(engine)
    writer = BatchWriter(store.write_many, idle_wait=5.0)  # long idle wait: close must not depend on it
    for i in range(1234):
        writer.submit(record(i))
    writer.close()
    assert writer.written == 1234
    assert len(store.list(limit=2000)) == 1234


def test_an_invalid_record_is_dropped_alone(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    init_db(engine)
    store = CdrStore(engine)
    writer = BatchWriter(store.write_many)
    writer.submit(record(1))
    writer.submit(record(2, disposition="not-a-disposition"))
    writer.submit(record(3))
    writer.close()
    assert sorted(c.call_id for c in store.list()) == ["c1", "c3"]
    assert writer.failed_batches == 1


def test_a_failing_database_is_retried_off_the_caller_thread() -> None:
    calls: list[tuple[str, int]] = []
    fail_once = threading.Event()

    def flaky(batch: list[dict[str, Any]]) -> None:
        calls.append((threading.current_thread().name, len(batch)))
        if not fail_once.is_set():
            fail_once.set()
            raise OSError("database is locked")

    writer = BatchWriter(flaky)
    writer.submit(record(1))
    writer.close()
    assert [name for name, _ in calls] == ["cdr-writer", "cdr-writer"]
    assert writer.written == 1


def test_a_lingering_writer_gathers_a_trickle_into_one_batch() -> None:
    """R13 records arrive one per device; lingering puts them in one transaction, not one each."""
    batches: list[int] = []

    def write_many(batch: list[dict[str, Any]]) -> None:
        batches.append(len(batch))

    writer = BatchWriter(write_many, name="fingerprints", linger=5.0)
    for i in range(3):  # well inside the linger
        writer.submit({"device_id": i})
    writer.close()  # cuts the linger short and drains
    assert batches == [3] and writer.written == 3


@pytest.mark.timeout(30)
def test_close_does_not_wait_out_the_linger() -> None:
    writer = BatchWriter(lambda batch: None, name="fingerprints", linger=600.0)
    writer.submit({"device_id": 1})
    writer.close(timeout=60.0)  # a 600 s linger would outlast the test's timeout
    assert writer.written == 1

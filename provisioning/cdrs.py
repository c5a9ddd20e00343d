"""Call detail records: batch writes for the gateway, queries for the API.

The gateway queues finished call attempts and a writer thread drains the
queue into `write_many`, one transaction per batch, so a slow database never
stalls SIP and a clean shutdown flushes what is queued. Validation happens
before the transaction: an invalid record raises `pydantic.ValidationError`
and nothing of that batch is written (the writer should log and drop only
the bad record, then retry the rest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from provisioning.models import Cdr
from provisioning.schemas import CdrIn


def to_cdr_in(record: CdrIn | Mapping[str, Any]) -> CdrIn:
    return record if isinstance(record, CdrIn) else CdrIn.model_validate(dict(record))


class CdrStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write_many(self, records: Sequence[CdrIn | Mapping[str, Any]]) -> int:
        """Insert all `records` in one transaction; returns how many were written."""
        rows = [Cdr(**to_cdr_in(r).model_dump()) for r in records]
        if not rows:
            return 0
        with Session(self._engine) as session:
            session.add_all(rows)
            session.commit()
        return len(rows)

    def list(self, *, account_id: int | None = None, call_id: str | None = None,
             disposition: str | None = None, limit: int = 100, offset: int = 0) -> list[Cdr]:
        """Newest first (by start time, then id)."""
        stmt = select(Cdr)
        if account_id is not None:
            stmt = stmt.where(Cdr.account_id == account_id)
        if call_id is not None:
            stmt = stmt.where(Cdr.call_id == call_id)
        if disposition is not None:
            stmt = stmt.where(Cdr.disposition == disposition)
        stmt = stmt.order_by(col(Cdr.start).desc(), col(Cdr.id).desc()).offset(offset).limit(limit)
        with Session(self._engine) as session:
            return list(session.exec(stmt))

"""Call detail records: batch writes for the gateway, queries for the API.

The gateway queues finished call attempts and a writer thread drains the
queue into `write_many`, one transaction per batch, so a slow database never
stalls SIP and a clean shutdown flushes what is queued. Validation happens
before the transaction: an invalid record raises `pydantic.ValidationError`
and nothing of that batch is written (the writer should log and drop only
the bad record, then retry the rest).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from provisioning.models import Cdr, User
from provisioning.rating import UsageGroup, money, month_bounds
from provisioning.schemas import CdrIn

#: rows fetched per round trip when streaming an export (each page its own short session)
EXPORT_PAGE = 1000


def to_cdr_in(record: CdrIn | Mapping[str, Any]) -> CdrIn:
    return record if isinstance(record, CdrIn) else CdrIn.model_validate(dict(record))


@dataclass(frozen=True, slots=True)
class CdrFilter:
    """What `GET /cdrs` and `GET /cdrs.csv` select. Every field narrows; None does not.
    `since` is inclusive and `until` exclusive, both on the record's start."""

    account_id: int | None = None
    call_id: str | None = None
    disposition: str | None = None
    call_type: str | None = None
    rule_id: str | None = None
    caller: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, stmt: SelectOfScalar[Cdr]) -> SelectOfScalar[Cdr]:
        exact = {"account_id": self.account_id, "call_id": self.call_id, "disposition": self.disposition,
                 "call_type": self.call_type, "rule_id": self.rule_id, "caller": self.caller}
        for name, value in exact.items():
            if value is not None:
                stmt = stmt.where(getattr(Cdr, name) == value)
        if self.since is not None:
            stmt = stmt.where(col(Cdr.start) >= self.since)
        if self.until is not None:
            stmt = stmt.where(col(Cdr.start) < self.until)
        return stmt


def _newest_first(stmt: SelectOfScalar[Cdr]) -> SelectOfScalar[Cdr]:
    return stmt.order_by(col(Cdr.start).desc(), col(Cdr.id).desc())


def _older_than(last: Cdr) -> ColumnElement[bool]:
    """Rows after `last` in newest-first order (keyset pagination on (start, id))."""
    return or_(col(Cdr.start) < last.start, and_(col(Cdr.start) == last.start, col(Cdr.id) < last.id))


class CdrStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write_many(self, records: Sequence[CdrIn | Mapping[str, Any]]) -> int:
        """Insert all `records` in one transaction; returns how many were written.

        One executemany through SQLAlchemy Core rather than ORM objects: the
        writer thread shares the GIL with the SIP loop, and the unit of work
        cost about 160 µs of CPU per record against about 40 µs this way
        (bench: 100-record batches on SQLite).
        """
        rows = [to_cdr_in(r).model_dump() for r in records]
        if not rows:
            return 0
        with self._engine.begin() as conn:
            conn.execute(sa_insert(Cdr), rows)
        return len(rows)

    def list(self, where: CdrFilter | None = None, *, limit: int = 100, offset: int = 0,
             **filters: Any) -> list[Cdr]:
        """Newest first (by start time, then id). Filters as a `CdrFilter` or as keywords."""
        where = where if where is not None else CdrFilter(**filters)
        stmt = _newest_first(where.apply(select(Cdr))).offset(offset).limit(limit)
        with Session(self._engine) as session:
            return list(session.exec(stmt))

    def iter_export(self, where: CdrFilter, *, limit: int | None = None, offset: int = 0,
                    page: int = EXPORT_PAGE) -> Iterator[Cdr]:
        """Every matching record, newest first, fetched `page` rows at a time.

        Why keyset pages with a session each: an export may be long and its
        reader slow; holding one connection (and on SQLite a read snapshot)
        for the whole download would pin the pool, while a page at a time
        leaves it free between pages. Records written during the export that
        are newer than the first page are not included (they sort before it).
        """
        remaining = limit
        last: Cdr | None = None
        while remaining is None or remaining > 0:
            size = page if remaining is None else min(page, remaining)
            stmt = where.apply(select(Cdr))
            if last is None:
                stmt = _newest_first(stmt).offset(offset)
            else:
                stmt = _newest_first(stmt.where(_older_than(last)))
            with Session(self._engine) as session:
                rows = list(session.exec(stmt.limit(size)))
            yield from rows
            if len(rows) < size:
                return
            last = rows[-1]
            if remaining is not None:
                remaining -= len(rows)

    def usage_groups(self, account_id: int, month: str) -> builtins.list[UsageGroup]:
        """One account's records started in `month` (UTC), totalled per call type, overage and currency."""
        start, end = month_bounds(month)
        answered = func.sum(case((col(Cdr.disposition) == "answered", 1), else_=0))
        stmt = (sa_select(col(Cdr.call_type), col(Cdr.overage), col(Cdr.currency), func.count(), answered,
                       func.coalesce(func.sum(col(Cdr.duration_s)), 0.0), func.coalesce(func.sum(col(Cdr.billable_s)), 0),
                       func.coalesce(func.sum(col(Cdr.charge)), 0))
                .where(col(Cdr.account_id) == account_id, col(Cdr.start) >= start, col(Cdr.start) < end)
                .group_by(col(Cdr.call_type), col(Cdr.overage), col(Cdr.currency))
                .order_by(col(Cdr.call_type), col(Cdr.overage), col(Cdr.currency)))
        with Session(self._engine) as session:
            rows = session.execute(stmt).all()
        # SQLite sums NUMERIC as floating point; quantising to the stored 4 places restores the cents.
        return [UsageGroup(call_type=t, overage=bool(o), currency=c, calls=int(n), answered=int(a or 0),
                           duration_s=float(d), billable_s=int(b), charge=money(Decimal(str(ch))))
                for t, o, c, n, a, d, b, ch in rows]

    def users_in_account(self, account_id: int) -> int:
        """Users of the account: the fair-use basis (authorised users R26, audio users R31)."""
        with Session(self._engine) as session:
            return int(session.exec(select(func.count()).select_from(User)
                                    .where(User.account_id == account_id)).one())

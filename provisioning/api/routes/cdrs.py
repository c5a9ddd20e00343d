"""Call records: `GET /cdrs` (JSON pages) and `GET /cdrs.csv` (the same selection as CSV).

Both are sync routes: FastAPI runs them, and the CSV generator, in its
threadpool, so the database never blocks the event loop the gateway shares.
The export streams a page of rows at a time and never builds the whole file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from provisioning.api.deps import Ctx
from provisioning.api.routes.common import Limit, Offset
from provisioning.cdrs import CdrFilter
from provisioning.models import Cdr, Disposition
from provisioning.rating import CdrCallType
from provisioning.schemas import CdrOut

router = APIRouter(tags=["call records"])

#: CSV columns, in this order (stable: append new columns at the end, never reorder)
CSV_COLUMNS: tuple[str, ...] = (
    "id", "account_id", "call_id", "caller", "callee", "caller_user", "callee_user", "destination",
    "call_type", "disposition", "sip_code", "reason", "rule_id", "start", "answer", "end", "duration_s",
    "billable_s", "rate_per_min", "charge", "currency", "overage", "plan", "gateway_node",
)
CSV_FLUSH_ROWS = 200  # rows per chunk handed to the client


def _utc(value: datetime | None) -> datetime | None:
    """Query datetimes without an offset are read as UTC (records are stored in UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def cdr_filter(account_id: Annotated[int | None, Query()] = None,
               call_id: Annotated[str | None, Query(max_length=255)] = None,
               disposition: Annotated[Disposition | None, Query()] = None,
               call_type: Annotated[CdrCallType | None, Query()] = None,
               rule_id: Annotated[str | None, Query(max_length=8, description="e.g. R20, R27, HW")] = None,
               caller: Annotated[str | None, Query(max_length=255, description="Exact caller.")] = None,
               since: Annotated[datetime | None, Query(
                   description="Records that started at or after this (ISO 8601; no offset = UTC).")] = None,
               until: Annotated[datetime | None, Query(
                   description="Records that started before this (exclusive).")] = None) -> CdrFilter:
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since > until:
        raise RequestValidationError([{
            "type": "value_error", "loc": ("query", "until"),
            "msg": f"until ({until.isoformat()}) is before since ({since.isoformat()})"}])
    return CdrFilter(account_id=account_id, call_id=call_id, disposition=disposition, call_type=call_type,
                     rule_id=rule_id, caller=caller, since=since, until=until)


Filter = Annotated[CdrFilter, Depends(cdr_filter)]


@router.get("/cdrs", response_model=list[CdrOut])
def list_cdrs(ctx: Ctx, where: Filter, limit: Limit = 100, offset: Offset = 0) -> list[CdrOut]:
    """Newest first (start, then id). Charges and rates are decimal strings (USD, 4 places)."""
    return [CdrOut.model_validate(r) for r in ctx.cdr_store().list(where, limit=limit, offset=offset)]


def csv_cell(value: Any) -> str:
    """One CSV field: ISO 8601 times, plain decimals, true/false, empty for none."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def csv_rows(records: Iterator[Cdr]) -> Iterator[str]:
    """Header then records, RFC 4180 (CRLF line ends, quotes doubled, fields quoted when needed)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_COLUMNS)
    pending = 0
    for record in records:
        writer.writerow([csv_cell(getattr(record, name)) for name in CSV_COLUMNS])
        pending += 1
        if pending >= CSV_FLUSH_ROWS:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
            pending = 0
    yield buf.getvalue()


@router.get("/cdrs.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "RFC 4180 CSV, header row first."}})
def export_cdrs(ctx: Ctx, where: Filter,
                limit: Annotated[int | None, Query(ge=1, description="At most this many rows (default all).")]
                = None, offset: Offset = 0) -> StreamingResponse:
    """The records `GET /cdrs` selects, every page of them, as CSV in the same order."""
    records = ctx.cdr_store().iter_export(where, limit=limit, offset=offset)
    return StreamingResponse(csv_rows(records), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="cdrs.csv"'})

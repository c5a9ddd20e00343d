"""Rated call records, read back: call types, calendar months and the usage summary.

The gateway rates every call before it writes the record (call type, billable
seconds with the plan's R24 rounding, rate and charge, fair-use overage); the
provisioning side never re-rates. What lives here is the arithmetic the API
does on records already written, kept pure so it is tested without a server:

- `CALL_TYPES` and which of them a plan's fair use counts (R20, R26, R31);
- `month_bounds("2025-03")`: the half-open UTC interval a month covers (a
  record belongs to the month of its *start*, in UTC);
- `summarise(...)`: per call type calls/minutes/billable seconds/charges, the
  fair-use allowance against what was used, and overage, from grouped totals.

Fair-use minutes are talk time (`duration_s`), not billable seconds: that is
what the gateway's fair-use counter adds when a call ends, so the summary and
the admission decision agree on when an allowance is used up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, get_args

from provisioning.plans import FairUse, Plan

CdrCallType = Literal["on-net", "domestic", "international", "toll-free", "premium", "emergency",
                      "conference"]
CALL_TYPES: tuple[str, ...] = get_args(CdrCallType)
PSTN_TYPES: frozenset[str] = frozenset({"domestic", "international", "toll-free", "premium"})

#: which call types count against fair use, by the plan's `fair_use.counts`
FAIR_USE_TYPES: dict[str, frozenset[str]] = {
    "all": frozenset(CALL_TYPES) - {"emergency"},  # emergency calls are never limited (R10)
    "pstn": PSTN_TYPES,
    "meeting": frozenset({"conference"}),
}

MONEY = Decimal("0.0001")  # charges and rates: USD with 4 decimals
_MONTH_RE = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


def money(value: Decimal | int | float | str) -> Decimal:
    """A charge or rate quantised to 4 decimals (half up, as a bill rounds)."""
    return Decimal(str(value)).quantize(MONEY, rounding=ROUND_HALF_UP)


def fair_use_types(counts: str) -> frozenset[str]:
    """Call types a plan's fair use counts; ValueError for an unknown `counts`."""
    try:
        return FAIR_USE_TYPES[counts]
    except KeyError:
        raise ValueError(f"unknown fair-use category {counts!r}: one of {', '.join(FAIR_USE_TYPES)}") from None


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in UTC; ValueError unless `YYYY-MM`."""
    m = _MONTH_RE.fullmatch(month) if isinstance(month, str) else None
    if m is None:
        raise ValueError(f"a month is YYYY-MM (e.g. 2025-03), not {month!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    if year < 1:
        raise ValueError(f"year out of range in {month!r}")
    start = datetime(year, mon, 1, tzinfo=UTC)
    if mon == 12:
        if year == 9999:
            raise ValueError(f"year out of range in {month!r}")
        return start, datetime(year + 1, 1, 1, tzinfo=UTC)
    return start, datetime(year, mon + 1, 1, tzinfo=UTC)


def month_of(when: datetime) -> str:
    """The `YYYY-MM` a moment falls in, in UTC (naive input is refused: it hides clock mistakes)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: use the injected UTC clock")
    return when.astimezone(UTC).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Totals of one account's records in one month sharing call type, overage flag and currency."""

    call_type: str
    overage: bool
    currency: str
    calls: int
    answered: int
    duration_s: float
    billable_s: int
    charge: Decimal


def _minutes(seconds: float) -> float:
    return round(seconds / 60.0, 2)


@dataclass(slots=True)
class _Bucket:
    """Running totals for one line of the summary."""

    calls: int = 0
    answered: int = 0
    duration_s: float = 0.0
    billable_s: int = 0
    charges: dict[str, Decimal] = field(default_factory=dict)

    def add(self, g: UsageGroup) -> None:
        self.calls += g.calls
        self.answered += g.answered
        self.duration_s += g.duration_s
        self.billable_s += g.billable_s
        self.charges[g.currency] = self.charges.get(g.currency, Decimal(0)) + g.charge

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "answered": self.answered, "duration_s": round(self.duration_s, 3),
                "minutes": _minutes(self.duration_s), "billable_s": self.billable_s,
                "billable_minutes": _minutes(self.billable_s),
                "charges": {cur: str(money(amount)) for cur, amount in sorted(self.charges.items())}}


def summarise(*, account_id: int, month: str, plan_id: str, plan: Plan | None, users: int,
              groups: Iterable[UsageGroup]) -> dict[str, Any]:
    """The usage summary of one account and month (JSON-ready).

    `users` is the number of users in the account: the authorised-user basis
    of R26 and the audio-user basis of R31 alike. Every known call type is
    listed (zeros included) so clients read a fixed shape; a type the
    records carry but this code does not know is listed too, never dropped.
    Charges are per currency, as decimal strings with 4 places. `overage` sums
    the records the gateway admitted past the allowance (flagged `overage`).
    """
    start, end = month_bounds(month)
    by_type: dict[str, _Bucket] = {t: _Bucket() for t in CALL_TYPES}
    totals, overage = _Bucket(), _Bucket()
    fair: FairUse | None = plan.fair_use if plan is not None else None
    counted = fair_use_types(fair.counts) if fair is not None else frozenset()
    used_s = 0.0
    for g in groups:
        by_type.setdefault(g.call_type, _Bucket()).add(g)
        totals.add(g)
        if g.overage:
            overage.add(g)
        if g.call_type in counted:
            used_s += g.duration_s

    fair_use: dict[str, Any] | None = None
    if fair is not None:
        limit = fair.monthly_limit(authorised_users=users, audio_users=users)
        used = _minutes(used_s)
        fair_use = {
            "rule_id": fair.rule_id, "basis": fair.basis, "counts": fair.counts, "over": fair.over,
            "call_types": [t for t in CALL_TYPES if t in counted],
            "users": users, "limit_minutes": limit, "used_minutes": used,
            "remaining_minutes": round(max(limit - used_s / 60.0, 0.0), 2),
            "exceeded": used_s >= limit * 60,
        }
    return {
        "account_id": account_id, "month": month, "plan": plan_id,
        "start": start, "end": end,
        "by_call_type": {t: b.to_dict() for t, b in by_type.items()},
        "totals": totals.to_dict(),
        "fair_use": fair_use,
        "overage": overage.to_dict(),
    }

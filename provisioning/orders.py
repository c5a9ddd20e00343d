"""Equipment orders and room kits: the seed's windows as pure functions and the
order lifecycle as an explicit table (no clock, no database: callers pass `now`).

- R40: a tracking number within 7 business days of the order (Mon-Fri; public
  holidays are not modelled, our assumption). Later is "late".
- R41: missing or broken parts reported within 48 hours of delivery; a faulty
  part or kit replaced free within 12 months of purchase, "as is" after; used
  (installed) kits are not returnable.
- R42: cancellation free within 24 hours of the order; within 30 days with
  written notice and a 25 % restocking fee; refused after.

"Within" includes the boundary: a claim at exactly 48 h is in time.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

TRACKING_BUSINESS_DAYS = 7  # R40
MISSING_PARTS_WINDOW = timedelta(hours=48)  # R41
WARRANTY_MONTHS = 12  # R41
FREE_CANCEL_WINDOW = timedelta(hours=24)  # R42
FEE_CANCEL_WINDOW = timedelta(days=30)  # R42
RESTOCKING_FEE_PCT = 25  # R42

KIT_ROLES = ("audio", "camera", "computer", "input", "installation_sheet")  # R40

#: (state, action) → next state; a missing pair is refused.
ORDER_TRANSITIONS: dict[tuple[str, str], str] = {
    ("ordered", "ship"): "shipped",
    ("shipped", "deliver"): "delivered",
    ("delivered", "claim_missing"): "missing_parts",
    ("complete", "claim_missing"): "missing_parts",
    ("missing_parts", "claim_missing"): "missing_parts",
    ("installed", "claim_missing"): "installed",
    ("active", "claim_missing"): "active",
    ("delivered", "complete"): "complete",
    ("missing_parts", "complete"): "complete",
    ("complete", "install"): "installed",
    ("installed", "activate"): "active",
    ("ordered", "cancel"): "cancelled",
    ("shipped", "cancel"): "cancelled",
    ("delivered", "cancel"): "cancelled",
    ("missing_parts", "cancel"): "cancelled",
    ("complete", "cancel"): "cancelled",
}
#: States in which the kit has been used: no return (R41).
USED_STATES = ("installed", "active")
#: States in which the goods have arrived, so a warranty claim makes sense.
RECEIVED_STATES = ("delivered", "missing_parts", "complete", "installed", "active")


def add_business_days(start: datetime, days: int) -> datetime:
    """`start` moved forward by `days` weekdays (Mon-Fri), same time of day."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def add_months(start: datetime, months: int) -> datetime:
    """Calendar months; the day is clamped to the month's end (29 Feb + 12 months → 28 Feb)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def tracking_due(ordered_at: datetime) -> datetime:
    return add_business_days(ordered_at, TRACKING_BUSINESS_DAYS)


def tracking_late(ordered_at: datetime, shipped_at: datetime | None, now: datetime) -> bool:
    """Late when the tracking number came after the due time, or has not come and the due time passed."""
    due = tracking_due(ordered_at)
    return shipped_at > due if shipped_at is not None else now > due


def claim_deadline(delivered_at: datetime) -> datetime:
    return delivered_at + MISSING_PARTS_WINDOW


def warranty_until(purchased_at: datetime) -> datetime:
    return add_months(purchased_at, WARRANTY_MONTHS)


@dataclass(frozen=True, slots=True)
class CancelTerms:
    allowed: bool
    fee_pct: int
    needs_written_notice: bool
    rule_id: str = "R42"


def cancel_terms(ordered_at: datetime, now: datetime) -> CancelTerms:
    age = now - ordered_at
    if age <= FREE_CANCEL_WINDOW:
        return CancelTerms(True, 0, False)
    if age <= FEE_CANCEL_WINDOW:
        return CancelTerms(True, RESTOCKING_FEE_PCT, True)
    return CancelTerms(False, 0, True)


def restocking_fee(amount_usd: int, pct: int) -> int:
    """Whole dollars, rounded up (the provider does not lose the cent)."""
    return math.ceil(amount_usd * pct / 100)

"""R40-R42 windows as pure functions, at their boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from provisioning.orders import (
    ORDER_TRANSITIONS,
    add_business_days,
    add_months,
    cancel_terms,
    claim_deadline,
    restocking_fee,
    tracking_due,
    tracking_late,
    warranty_until,
)

MON = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("start", "days", "expected"), [
    (MON, 1, datetime(2025, 3, 4, 10, 0, tzinfo=UTC)),
    (MON, 5, datetime(2025, 3, 10, 10, 0, tzinfo=UTC)),            # over one weekend
    (MON, 7, datetime(2025, 3, 12, 10, 0, tzinfo=UTC)),
    (MON + timedelta(days=4), 1, datetime(2025, 3, 10, 10, 0, tzinfo=UTC)),  # Friday + 1 = Monday
    (MON + timedelta(days=5), 7, datetime(2025, 3, 18, 10, 0, tzinfo=UTC)),  # ordered on a Saturday
    (MON, 0, MON),
])
def test_business_days(start: datetime, days: int, expected: datetime) -> None:
    assert add_business_days(start, days) == expected


def test_r40_tracking_number_within_7_business_days() -> None:
    due = tracking_due(MON)
    assert due == datetime(2025, 3, 12, 10, 0, tzinfo=UTC)
    assert not tracking_late(MON, due, due + timedelta(days=30))            # exactly on time
    assert tracking_late(MON, due + timedelta(minutes=1), due + timedelta(days=1))
    assert not tracking_late(MON, None, due)                                 # still open, not yet late
    assert tracking_late(MON, None, due + timedelta(minutes=1))


def test_r41_claim_window_and_warranty() -> None:
    assert claim_deadline(MON) - MON == timedelta(hours=48)
    assert warranty_until(MON) == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    leap = datetime(2024, 2, 29, 9, 0, tzinfo=UTC)
    assert add_months(leap, 12) == datetime(2025, 2, 28, 9, 0, tzinfo=UTC)
    assert add_months(datetime(2025, 1, 31, tzinfo=UTC), 1) == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2025, 11, 15, tzinfo=UTC), 3) == datetime(2026, 2, 15, tzinfo=UTC)


@pytest.mark.parametrize(("age", "allowed", "fee", "notice"), [
    (timedelta(hours=23, minutes=59), True, 0, False),
    (timedelta(hours=24), True, 0, False),
    (timedelta(hours=24, minutes=1), True, 25, True),
    (timedelta(days=30), True, 25, True),
    (timedelta(days=30, minutes=1), False, 0, True),
])
def test_r42_cancellation_terms(age: timedelta, allowed: bool, fee: int, notice: bool) -> None:
    terms = cancel_terms(MON, MON + age)
    assert (terms.allowed, terms.fee_pct, terms.needs_written_notice, terms.rule_id) == (allowed, fee, notice, "R42")


def test_restocking_fee_rounds_up_to_whole_dollars() -> None:
    assert restocking_fee(2999, 25) == 750
    assert restocking_fee(2000, 25) == 500
    assert restocking_fee(0, 25) == 0


def test_order_table_has_no_way_back() -> None:
    assert ("installed", "cancel") not in ORDER_TRANSITIONS and ("active", "cancel") not in ORDER_TRANSITIONS
    assert all(state != "cancelled" for state, _ in ORDER_TRANSITIONS)

"""provisioning.rating: months in UTC, fair-use categories and the usage summary arithmetic,
against the real plan files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.plans import Plan, load_plans
from provisioning.rating import (
    CALL_TYPES,
    PSTN_TYPES,
    UsageGroup,
    fair_use_types,
    money,
    month_bounds,
    month_of,
    summarise,
)

PLANS = load_plans()


def plan(plan_id: str) -> Plan:
    p = PLANS.get(plan_id)
    assert p is not None
    return p


def group(call_type: str, *, calls: int = 1, duration_s: float = 60.0, billable_s: int = 60,
          charge: str = "0", overage: bool = False, currency: str = "USD", answered: int | None = None) -> UsageGroup:
    return UsageGroup(call_type=call_type, overage=overage, currency=currency, calls=calls,
                      answered=calls if answered is None else answered, duration_s=duration_s,
                      billable_s=billable_s, charge=Decimal(charge))


@pytest.mark.parametrize(("month", "start", "end"), [
    ("2025-03", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)),
    ("2024-12", datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    ("2024-02", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
])
def test_month_bounds_are_half_open_utc(month: str, start: datetime, end: datetime) -> None:
    assert month_bounds(month) == (start, end)
    assert month_of(start) == month
    assert month_of(end - timedelta(microseconds=1)) == month
    assert month_of(end) != month


@pytest.mark.parametrize("bad", ["2025-13", "2025-00", "2025-3", "March", "", "2025-03-01", "0000-01", "9999-12"])
def test_bad_months_are_refused_with_the_format(bad: str) -> None:
    with pytest.raises(ValueError, match=r"YYYY-MM|out of range"):
        month_bounds(bad)


def test_month_of_reads_utc_and_refuses_naive() -> None:
    # 00:30 on 1 April in UTC+02:00 is still 31 March in UTC.
    assert month_of(datetime(2025, 4, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))) == "2025-03"
    with pytest.raises(ValueError, match="naive"):
        month_of(datetime(2025, 4, 1))


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9998, 12, 31),
                    timezones=st.just(UTC)))
def test_every_moment_lies_in_its_months_bounds(when: datetime) -> None:
    start, end = month_bounds(month_of(when))
    assert start <= when < end


def test_fair_use_categories() -> None:
    assert fair_use_types("all") == frozenset(CALL_TYPES) - {"emergency"}
    assert fair_use_types("pstn") == PSTN_TYPES == {"domestic", "international", "toll-free", "premium"}
    assert fair_use_types("meeting") == {"conference"}
    with pytest.raises(ValueError, match="unknown fair-use category"):
        fair_use_types("weekend")


def test_money_rounds_half_up_to_four_places() -> None:
    assert money("0.00005") == Decimal("0.0001")
    assert money(0.12344) == Decimal("0.1234")
    assert str(money(3)) == "3.0000"


def test_connect_counts_pstn_minutes_against_users_times_allowance() -> None:
    p = plan("connect")
    assert p.fair_use is not None
    users = 3
    groups = [group("domestic", calls=2, duration_s=600.0, billable_s=600, charge="0"),
              group("international", duration_s=125.0, billable_s=180, charge="0.1500"),
              group("on-net", calls=5, duration_s=3000.0, billable_s=3000),
              group("emergency", duration_s=90.0, billable_s=0),
              group("domestic", calls=1, answered=0, duration_s=0.0, billable_s=0)]
    s = summarise(account_id=7, month="2025-03", plan_id="connect", plan=p, users=users, groups=groups)
    fu = s["fair_use"]
    assert fu["limit_minutes"] == p.fair_use.minutes * users
    assert fu["used_minutes"] == round((600.0 + 125.0) / 60, 2)  # on-net and emergency do not count
    assert fu["call_types"] == ["domestic", "international", "toll-free", "premium"]
    assert fu["rule_id"] == p.fair_use.rule_id and fu["exceeded"] is False
    assert fu["remaining_minutes"] == round(p.fair_use.minutes * users - 725.0 / 60, 2)
    dom = s["by_call_type"]["domestic"]
    assert (dom["calls"], dom["answered"], dom["billable_s"]) == (3, 2, 600)
    assert s["by_call_type"]["international"]["charges"] == {"USD": "0.1500"}
    assert s["by_call_type"]["premium"] == {"calls": 0, "answered": 0, "duration_s": 0.0, "minutes": 0.0,
                                            "billable_s": 0, "billable_minutes": 0.0, "charges": {}}
    assert s["totals"]["calls"] == sum(g.calls for g in groups)
    assert s["totals"]["billable_s"] == sum(g.billable_s for g in groups)
    assert s["overage"]["calls"] == 0
    assert (s["start"], s["end"]) == month_bounds("2025-03")


def test_grasshopper_counts_everything_but_emergency_per_account() -> None:
    p = plan("grasshopper")
    assert p.fair_use is not None and p.fair_use.basis == "account"
    groups = [group(t, duration_s=120.0, billable_s=120) for t in CALL_TYPES]
    s = summarise(account_id=1, month="2025-03", plan_id="grasshopper", plan=p, users=40, groups=groups)
    assert s["fair_use"]["limit_minutes"] == p.fair_use.minutes  # not multiplied by users
    assert s["fair_use"]["used_minutes"] == 2.0 * (len(CALL_TYPES) - 1)


def test_meeting_counts_only_conference_and_reports_overage() -> None:
    p = plan("meeting")
    assert p.fair_use is not None
    limit_s = p.fair_use.monthly_limit(audio_users=1) * 60
    groups = [group("conference", duration_s=float(limit_s), billable_s=limit_s),
              group("conference", calls=2, duration_s=300.0, billable_s=300, overage=True, charge="1.2"),
              group("domestic", duration_s=999.0, billable_s=999)]
    s = summarise(account_id=2, month="2025-03", plan_id="meeting", plan=p, users=1, groups=groups)
    fu = s["fair_use"]
    assert fu["exceeded"] is True and fu["remaining_minutes"] == 0.0
    assert fu["used_minutes"] == round((limit_s + 300) / 60, 2)
    assert s["overage"] == {"calls": 2, "answered": 2, "duration_s": 300.0, "minutes": 5.0, "billable_s": 300,
                            "billable_minutes": 5.0, "charges": {"USD": "1.2000"}}


def test_charges_are_kept_per_currency_and_unknown_types_are_listed() -> None:
    groups = [group("international", charge="0.0100"), group("international", charge="0.0200", currency="EUR"),
              group("satellite", charge="2")]
    s = summarise(account_id=3, month="2025-03", plan_id="gone", plan=None, users=0, groups=groups)
    assert s["fair_use"] is None  # no plan (removed from the catalog): no allowance to compare
    assert s["by_call_type"]["international"]["charges"] == {"EUR": "0.0200", "USD": "0.0100"}
    assert s["by_call_type"]["satellite"]["calls"] == 1
    assert s["totals"]["charges"] == {"EUR": "0.0200", "USD": "2.0100"}
    assert list(s["by_call_type"])[:len(CALL_TYPES)] == list(CALL_TYPES)

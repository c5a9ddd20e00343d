"""The pure call policy and the numbering/rating helpers, table-driven."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.numbering import CallType, Destination, classify, to_e164
from gateway.policy import Admit, Attempt, FloodGuard, Reject, Usage, decide
from provisioning.plans import FairUse, load_plans

PLANS = load_plans()
GRASSHOPPER = PLANS.plans["grasshopper"]
CONNECT = PLANS.plans["connect"]


def attempt(dialled: str, region: str = "US", **kw: object) -> Attempt:
    dest = classify(dialled, region)
    return Attempt(account_id=1, caller="1001-x", destination=dest, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("dialled", "region", "kind", "e164"), [
    ("1002", "US", CallType.ON_NET, None),
    ("4085550100", "US", CallType.DOMESTIC, "+14085550100"),
    ("14085550100", "US", CallType.DOMESTIC, "+14085550100"),
    ("914085550100", "US", CallType.DOMESTIC, "+14085550100"),
    ("+14085550100", "US", CallType.DOMESTIC, "+14085550100"),
    ("011442079460000", "US", CallType.INTERNATIONAL, "+442079460000"),
    ("18005550100", "US", CallType.TOLL_FREE, "+18005550100"),
    ("19005550100", "US", CallType.PREMIUM, "+19005550100"),
    ("02079460000", "UK", CallType.DOMESTIC, "+442079460000"),
    ("0033142000000", "UK", CallType.INTERNATIONAL, "+33142000000"),
    ("0800123456", "UK", CallType.TOLL_FREE, "+44800123456"),
])
def test_classification(dialled: str, region: str, kind: CallType, e164: str | None) -> None:
    dest = classify(dialled, region)
    assert (dest.kind, dest.e164) == (kind, e164)


def test_e164_rejects_non_numbers() -> None:
    assert to_e164("alice", "US") is None
    assert to_e164("+12", "US") is None


@pytest.mark.parametrize(("duration", "billable"), [
    (0, 0), (0.4, 18), (1, 18), (17, 18), (18, 18), (18.2, 24), (19, 24), (24, 24), (61, 66), (3600, 3600),
])
def test_r24_billing_increments(duration: float, billable: int) -> None:
    assert GRASSHOPPER.billing.billable_seconds(duration) == billable


def test_plain_on_net_call_is_admitted() -> None:
    assert decide(attempt("1002"), GRASSHOPPER, Usage()) == Admit(overage=False, counts_for_fair_use=True)


@pytest.mark.parametrize(("below", "admitted"), [(50, True), (1, True), (0, False), (-1, False)])
def test_r20_concurrency_cap_boundary(below: int, admitted: bool) -> None:
    cap = GRASSHOPPER.max_concurrent_calls
    assert cap == 50  # the seed's number, from the plan data
    result = decide(attempt("1002"), GRASSHOPPER, Usage(account_active=cap - below))
    if admitted:
        assert isinstance(result, Admit)
    else:
        assert result == Reject(503, "Concurrent call limit of 50 reached (R20)", "R20")


def test_line_capacity_from_the_hardware_profile() -> None:
    a = attempt("1002", line_limit=1)
    assert isinstance(decide(a, GRASSHOPPER, Usage(line_active=0)), Admit)
    result = decide(a, GRASSHOPPER, Usage(line_active=1))
    assert isinstance(result, Reject) and result.status == 486


def test_r4_concurrent_licence_carries_one_call() -> None:
    result = decide(attempt("1002", licence_id=7), GRASSHOPPER, Usage(licence_active=1))
    assert isinstance(result, Reject) and result.rule_id == "R4" and "R4" in result.reason


def test_r25_blocked_prefix_and_account_allow_list() -> None:
    assert GRASSHOPPER.is_blocked("+2521234567")
    blocked = decide(attempt("0112521234567", deposit_usd=500), GRASSHOPPER, Usage())
    assert isinstance(blocked, Reject) and blocked.rule_id == "R25" and blocked.status == 403
    allowed = decide(attempt("0112521234567", deposit_usd=500, allowed_prefixes=("+252",)), GRASSHOPPER,
                     Usage())
    assert isinstance(allowed, Admit)


@pytest.mark.parametrize(("deposit", "admitted"), [(0, False), (499, False), (500, True)])
def test_r24_international_needs_the_deposit(deposit: int, admitted: bool) -> None:
    result = decide(attempt("011442079460000", deposit_usd=deposit), GRASSHOPPER, Usage())
    assert isinstance(result, Admit) is admitted
    if not admitted:
        assert isinstance(result, Reject) and result.rule_id == "R24" and "500" in result.reason


def test_r28_premium_refused() -> None:
    result = decide(attempt("19005550100"), GRASSHOPPER, Usage())
    assert isinstance(result, Reject) and result.rule_id == "R28"


def test_r20_fair_use_refuses_at_the_allowance() -> None:
    assert GRASSHOPPER.fair_use is not None
    limit = GRASSHOPPER.fair_use.monthly_limit(authorised_users=3)
    assert limit == 50_000
    assert isinstance(decide(attempt("1002"), GRASSHOPPER, Usage(fair_use_minutes=49_999.9, fair_use_limit=limit)),
                      Admit)
    result = decide(attempt("1002"), GRASSHOPPER, Usage(fair_use_minutes=50_000, fair_use_limit=limit))
    assert isinstance(result, Reject) and result.rule_id == "R20"


def test_r26_connect_counts_pstn_per_user_and_marks_overage() -> None:
    assert CONNECT.fair_use is not None
    limit = CONNECT.fair_use.monthly_limit(authorised_users=4)
    assert limit == 10_000
    on_net = decide(attempt("1002"), CONNECT, Usage(fair_use_minutes=20_000, fair_use_limit=limit))
    assert on_net == Admit(overage=False, counts_for_fair_use=False)  # on-net minutes do not count
    pstn = decide(attempt("4085550100"), CONNECT, Usage(fair_use_minutes=10_000, fair_use_limit=limit))
    assert pstn == Admit(overage=True, counts_for_fair_use=True)


def test_r27_flood_guard_trips_and_bans() -> None:
    guard = FloodGuard(max_per_source=5)
    assert isinstance(decide(attempt("1002"), GRASSHOPPER, Usage(source_rate=5), guard), Admit)
    tripped = decide(attempt("1002"), GRASSHOPPER, Usage(source_rate=6), guard)
    assert isinstance(tripped, Reject) and tripped.rule_id == "R27" and tripped.ban == "source"
    banned = decide(attempt("1002"), GRASSHOPPER, Usage(source_banned=True), guard)
    assert isinstance(banned, Reject) and banned.status == 503 and banned.ban is None


def test_abuse_is_refused_before_anything_else() -> None:
    usage = Usage(account_active=100, source_banned=True)
    result = decide(attempt("0112521234567"), GRASSHOPPER, usage)
    assert isinstance(result, Reject) and result.rule_id == "R27"


def test_plan_without_caps_admits_everything_domestic() -> None:
    free = replace(CONNECT, fair_use=None)
    assert isinstance(decide(attempt("4085550100"), free, Usage(account_active=10_000)), Admit)


def test_destination_kinds_are_explicit() -> None:
    dest = Destination(CallType.CONFERENCE, None, None)
    a = Attempt(account_id=1, caller="x", destination=dest)
    meeting = replace(GRASSHOPPER, fair_use=FairUse(3000, "audio_user", "meeting", "refuse", "R31"))
    result = decide(a, meeting, Usage(fair_use_minutes=3000, fair_use_limit=3000))
    assert isinstance(result, Reject) and result.rule_id == "R31"

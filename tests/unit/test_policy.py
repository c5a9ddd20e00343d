"""The pure call policy and the numbering/rating helpers, table-driven."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from gateway.numbering import CallType, Destination, billable_seconds, classify, to_e164
from gateway.policy import Admit, Attempt, FloodGuard, Reject, Usage, decide, fair_use_limit


@dataclass(frozen=True)
class FairUse:
    minutes: int
    basis: str
    counts: str
    over: str
    rule_id: str


@dataclass(frozen=True)
class International:
    allowed: bool = True
    deposit_required_usd: int | None = 500
    rule_id: str = "R24"


@dataclass(frozen=True)
class Plan:
    id: str = "grasshopper"
    max_concurrent_calls: int | None = 50
    fair_use: FairUse | None = FairUse(50_000, "account", "all", "refuse", "R20")
    international: International = field(default_factory=International)
    blocked_prefixes: tuple[str, ...] = ("+882", "+883", "+216")
    premium_prefixes: tuple[str, ...] = ("+1900",)
    premium: str = "refuse"


GRASSHOPPER = Plan()
CONNECT = Plan(id="connect", max_concurrent_calls=None,
               fair_use=FairUse(2_500, "authorised_user", "pstn", "overage", "R26"),
               international=International(deposit_required_usd=None))


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
    assert billable_seconds(duration, 6, 18) == billable


def test_plain_on_net_call_is_admitted() -> None:
    assert decide(attempt("1002"), GRASSHOPPER, Usage()) == Admit(overage=False, counts_for_fair_use=True)


@pytest.mark.parametrize(("active", "admitted"), [(0, True), (49, True), (50, False), (51, False)])
def test_r20_concurrency_cap_boundary(active: int, admitted: bool) -> None:
    result = decide(attempt("1002"), GRASSHOPPER, Usage(account_active=active))
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
    blocked = decide(attempt("011216123456789", deposit_usd=500), GRASSHOPPER, Usage())
    assert isinstance(blocked, Reject) and blocked.rule_id == "R25" and blocked.status == 403
    allowed = decide(attempt("011216123456789", deposit_usd=500, allowed_prefixes=("+216",)), GRASSHOPPER,
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
    limit = fair_use_limit(GRASSHOPPER, authorised_users=3, audio_users=0)
    assert limit == 50_000
    assert isinstance(decide(attempt("1002"), GRASSHOPPER, Usage(fair_use_minutes=49_999.9, fair_use_limit=limit)),
                      Admit)
    result = decide(attempt("1002"), GRASSHOPPER, Usage(fair_use_minutes=50_000, fair_use_limit=limit))
    assert isinstance(result, Reject) and result.rule_id == "R20"


def test_r26_connect_counts_pstn_per_user_and_marks_overage() -> None:
    limit = fair_use_limit(CONNECT, authorised_users=4, audio_users=0)
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
    result = decide(attempt("011216123456789"), GRASSHOPPER, usage)
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

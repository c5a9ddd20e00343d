"""Call policy: one pure decision per call attempt.

``decide`` sees the attempt, the account, the plan (data from
``provisioning/plans``) and the counter values the proxy read for it, and
answers ``Admit`` or ``Reject(status, reason, rule_id)``.  It reads no clock,
no database and no counters of its own, so every rule is a table-driven unit
test and the same function serves one process or many.

Emergency calls never get here: the router classifies them first and they
bypass every rule below (R10/R11 are decided by ``gateway/emergency``).

The order of the checks is the order a provider would refuse in: abuse first
(flood guard, R27), then where the call goes (blocked, premium, international:
R25, R28, R24), then how much is in use (concurrency: R20, R4; fair use: R20,
R26, R31).  Each refusal names its rule in the reason phrase; the proxy puts
the same id in the call record.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.numbering import CallType, Destination
from provisioning.plans import Plan


@dataclass(frozen=True, slots=True)
class FloodGuard:
    """Pike-like limits (R27): attempts per window per calling line and per callee, then a temporary ban.

    Load tests that place many calls per line raise these (``--flood-*`` settings).
    """

    window: float = 10.0
    max_per_source: int = 60
    max_per_callee: int = 60
    ban_seconds: float = 300.0


@dataclass(frozen=True, slots=True)
class Attempt:
    account_id: int
    caller: str  # the authenticated line's SIP username
    destination: Destination
    deposit_usd: int = 0  # recorded for the account (R24)
    allowed_prefixes: tuple[str, ...] = ()  # per-account exceptions to blocked prefixes (R25)
    line_limit: int | None = None  # calls the caller's line/port can carry (hardware profile)
    licence_id: int | None = None  # concurrent licence in use (R4)


@dataclass(frozen=True, slots=True)
class Usage:
    """Counter values read for this attempt (this attempt not yet included, except in the rates)."""

    account_active: int = 0
    line_active: int = 0
    licence_active: int = 0
    fair_use_minutes: float = 0.0  # used this month in the plan's fair-use category
    fair_use_limit: float | None = None  # plan.fair_use.monthly_limit(...) for the account
    source_rate: int = 0  # attempts from this source inside the flood window, this one included
    callee_rate: int = 0
    source_banned: bool = False
    callee_banned: bool = False


@dataclass(frozen=True, slots=True)
class Admit:
    overage: bool = False  # over the fair-use allowance but admitted: the record says so
    counts_for_fair_use: bool = True


@dataclass(frozen=True, slots=True)
class Reject:
    status: int
    reason: str
    rule_id: str
    ban: str | None = None  # "source" or "callee": the proxy bans that key for the guard's ban time


Decision = Admit | Reject

PSTN_TYPES = (CallType.DOMESTIC, CallType.INTERNATIONAL, CallType.TOLL_FREE, CallType.PREMIUM)


def counts_for_fair_use(counts: str, kind: CallType) -> bool:
    if counts == "all":
        return kind is not CallType.EMERGENCY
    if counts == "pstn":
        return kind in PSTN_TYPES
    if counts == "meeting":
        return kind is CallType.CONFERENCE
    return False


def decide(attempt: Attempt, plan: Plan, usage: Usage, guard: FloodGuard = FloodGuard()) -> Decision:
    kind = attempt.destination.kind
    e164 = attempt.destination.e164 or ""

    # R27: high-frequency automated calls
    if usage.source_banned:
        return Reject(503, "Too many call attempts from this line, temporarily blocked (R27)", "R27")
    if usage.callee_banned:
        return Reject(503, "Too many call attempts to this number, temporarily blocked (R27)", "R27")
    if usage.source_rate > guard.max_per_source:
        return Reject(503, "Too many call attempts from this line (R27)", "R27", ban="source")
    if usage.callee_rate > guard.max_per_callee:
        return Reject(503, "Too many call attempts to this number (R27)", "R27", ban="callee")

    # where the call goes
    if e164:
        if plan.is_blocked(e164, attempt.allowed_prefixes):
            return Reject(403, "Destination blocked for fraud prevention (R25)", "R25")
        premium = kind is CallType.PREMIUM or plan.is_premium(e164)
        if premium and plan.premium == "refuse":
            return Reject(403, "Premium and information services are not included (R28)", "R28")
        intl = plan.international
        if kind is CallType.INTERNATIONAL and not intl.enabled_for(attempt.deposit_usd):
            if not intl.allowed:
                return Reject(403, f"International calling is not part of this plan ({intl.rule_id})",
                              intl.rule_id)
            return Reject(403, f"International calling needs a USD {intl.deposit_required_usd} deposit "
                               f"({intl.rule_id})", intl.rule_id)

    # how much is in use
    cap = plan.max_concurrent_calls
    if cap is not None and usage.account_active >= cap:
        return Reject(503, f"Concurrent call limit of {cap} reached (R20)", "R20")
    if attempt.line_limit is not None and usage.line_active >= attempt.line_limit:
        return Reject(486, f"Line busy: {attempt.line_limit} call(s) per line", "HW")
    if attempt.licence_id is not None and usage.licence_active >= 1:
        return Reject(486, "Concurrent licence in use by another call (R4)", "R4")

    fair = plan.fair_use
    counted = fair is not None and counts_for_fair_use(fair.counts, kind)
    if fair is not None and counted and usage.fair_use_limit is not None \
            and usage.fair_use_minutes >= usage.fair_use_limit:
        if fair.over == "refuse":
            return Reject(403, f"Monthly fair-use allowance used up ({fair.rule_id})", fair.rule_id)
        return Admit(overage=True, counts_for_fair_use=True)
    return Admit(overage=False, counts_for_fair_use=counted)


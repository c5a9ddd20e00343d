"""Account-level E911 settings and service status (issue #4).

- `update_e911_settings`: the R13 stale-location policy ("use_last" or
  "national_centre") and the Kari's Law notification webhook URL.
- `suspend_account` / `resume_account`: R11 "not when the service was
  deactivated (e.g. unpaid)". A suspended account's emergency calls fail
  with the R11 reason (gateway.emergency); its registrations end too
  (the registrar refuses accounts that are not active).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioning import audit
from provisioning.errors import Conflict, Invalid
from provisioning.events import Change
from provisioning.models import Account
from provisioning.services.env import ServiceEnv, get_or_404

STALE_POLICIES = ("use_last", "national_centre")  # gateway.emergency.STALE_POLICIES


def update_e911_settings(env: ServiceEnv, account_id: int, changes: Mapping[str, Any]) -> Account:
    """PATCH the account's E911 settings; only the keys given change."""
    s = env.session
    account = get_or_404(s, Account, account_id)
    if "stale_policy" in changes and changes["stale_policy"] not in STALE_POLICIES:
        raise Invalid("stale_policy", f"one of {', '.join(STALE_POLICIES)}", rule="R13")
    diff: dict[str, Any] = {}
    for key in ("stale_policy", "notification_url"):
        if key in changes and getattr(account, key) != changes[key]:
            diff[key] = {"before": getattr(account, key), "after": changes[key]}
            setattr(account, key, changes[key])
    if not diff:
        return account
    s.add(account)
    audit.record(s, at=env.now(), actor=env.actor, action="account.e911_updated", entity="account",
                 entity_id=account_id, account_id=account_id, detail=diff)
    env.commit(Change("account.e911_updated", account_id, account_id))
    return account


def _set_status(env: ServiceEnv, account_id: int, status: str, reason: str | None) -> Account:
    s = env.session
    account = get_or_404(s, Account, account_id)
    if account.status == status:
        return account  # idempotent: nothing changed, nothing to audit
    if status == "active" and account.status != "suspended":
        raise Conflict(f"account {account_id} is {account.status}; only a suspended account can be resumed")
    before = account.status
    account.status = status
    s.add(account)
    verb = "suspended" if status == "suspended" else "resumed"
    audit.record(s, at=env.now(), actor=env.actor, action=f"account.{verb}", entity="account",
                 entity_id=account_id, account_id=account_id,
                 detail={"from_status": before, "to_status": status, "reason": reason, "rule_id": "R11"})
    env.commit(Change(f"account.{verb}", account_id, account_id))
    return account


def suspend_account(env: ServiceEnv, account_id: int, reason: str | None = None) -> Account:
    """R11: a deactivated service cannot reach emergency numbers (nor register)."""
    return _set_status(env, account_id, "suspended", reason)


def resume_account(env: ServiceEnv, account_id: int) -> Account:
    return _set_status(env, account_id, "active", None)

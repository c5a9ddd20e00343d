"""Accounts (tenants): plan, region, international deposit (R24) and the
per-account allow-list that lifts blocked destinations (R25)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.errors import Invalid
from provisioning.events import Change
from provisioning.models import Account
from provisioning.schemas import AccountCreate
from provisioning.services.env import ServiceEnv, get_or_404
from provisioning.services.users import locked_account, user_count

REGIONS = ("US", "CA", "EU", "UK", "AU")


def create_account(env: ServiceEnv, data: AccountCreate) -> Account:
    if data.plan not in env.plans:
        raise Invalid("plan", f"unknown plan {data.plan!r}; one of {', '.join(env.plans.ids)}")
    if data.region not in REGIONS:
        raise Invalid("region", f"unknown region {data.region!r}; one of {', '.join(REGIONS)}")
    if data.flex_minimum is not None and env.plans.get(data.plan).flex is None:  # type: ignore[union-attr]
        raise Invalid("flex_minimum", f"plan {data.plan} has no flex subscription (R5)", rule="R5")
    account = Account(name=data.name, plan=data.plan, region=data.region, status="active",
                      created_at=env.now(), deposit_usd=0, allowed_prefixes=[],
                      flex_minimum=data.flex_minimum)
    env.session.add(account)
    env.session.flush()
    assert account.id is not None
    audit.record(env.session, at=env.now(), actor=env.actor, action="account.created",
                 entity="account", entity_id=account.id, account_id=account.id,
                 detail=data.model_dump())
    env.commit(Change("account.created", account.id, account.id))
    return account


def record_deposit(env: ServiceEnv, account_id: int, amount_usd: int) -> Account:
    """Add a deposit (R24: international calling needs one before it is enabled).
    Deposits only accumulate; refunds are out of scope."""
    if amount_usd <= 0:
        raise Invalid("amount_usd", "must be a positive number of US dollars")
    account = get_or_404(env.session, Account, account_id)
    before = account.deposit_usd
    account.deposit_usd = before + amount_usd
    env.session.add(account)
    audit.record(env.session, at=env.now(), actor=env.actor, action="account.deposit_recorded",
                 entity="account", entity_id=account_id, account_id=account_id,
                 detail={"amount_usd": amount_usd, "deposit_usd_before": before,
                         "deposit_usd": account.deposit_usd})
    env.commit(Change("account.deposit_recorded", account_id, account_id))
    return account


def set_allowed_prefixes(env: ServiceEnv, account_id: int, prefixes: list[str]) -> Account:
    """Replace the account's R25 allow-list (granted "on request, under conditions")."""
    account = get_or_404(env.session, Account, account_id)
    before = list(account.allowed_prefixes)
    ordered = sorted(set(prefixes))
    account.allowed_prefixes = ordered
    env.session.add(account)
    audit.record(env.session, at=env.now(), actor=env.actor, action="account.allowed_prefixes_set",
                 entity="account", entity_id=account_id, account_id=account_id,
                 detail={"before": before, "after": ordered})
    env.commit(Change("account.allowed_prefixes_set", account_id, account_id))
    return account


def set_flex_minimum(env: ServiceEnv, account_id: int, minimum: int | None) -> Account:
    """R5: change the flex minimum; refused when the account already has more
    users than the new maximum (max = plan multiplier x minimum)."""
    account = locked_account(env, account_id)
    plan = env.plans.get(account.plan)
    if minimum is not None:
        if plan is None or plan.flex is None:
            raise Invalid("minimum", f"plan {account.plan} has no flex subscription (R5)", rule="R5")
        maximum = plan.flex.max_multiplier * minimum
        count = user_count(env.session, account_id)
        if count > maximum:
            raise Invalid("minimum", f"account {account_id} has {count} users, more than the flex "
                          f"maximum {maximum} = {plan.flex.max_multiplier} x {minimum} (R5)",
                          rule="R5", limit=maximum)
    before = account.flex_minimum
    account.flex_minimum = minimum
    env.session.add(account)
    audit.record(env.session, at=env.now(), actor=env.actor, action="account.flex_set",
                 entity="account", entity_id=account_id, account_id=account_id,
                 detail={"before": before, "after": minimum})
    env.commit(Change("account.flex_set", account_id, account_id))
    return account


def get_account(session: Session, account_id: int) -> Account:
    return get_or_404(session, Account, account_id)


def list_accounts(session: Session, *, limit: int = 100, offset: int = 0) -> list[Account]:
    return list(session.exec(select(Account).order_by(col(Account.id)).offset(offset).limit(limit)))

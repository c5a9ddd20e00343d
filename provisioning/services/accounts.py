"""Accounts (tenants)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.errors import Invalid
from provisioning.events import Change
from provisioning.models import Account
from provisioning.schemas import AccountCreate
from provisioning.services.env import ServiceEnv, get_or_404

# Plans become data files with their limits in a later issue; until then the
# issue allows exactly one.
SUPPORTED_PLANS = ("connect",)
REGIONS = ("US", "CA", "EU", "UK", "AU")


def create_account(env: ServiceEnv, data: AccountCreate) -> Account:
    if data.plan not in SUPPORTED_PLANS:
        raise Invalid("plan", f"unsupported plan {data.plan!r}; supported: {', '.join(SUPPORTED_PLANS)}")
    if data.region not in REGIONS:
        raise Invalid("region", f"unknown region {data.region!r}; one of {', '.join(REGIONS)}")
    account = Account(name=data.name, plan=data.plan, region=data.region, status="active",
                      created_at=env.now())
    env.session.add(account)
    env.session.flush()
    assert account.id is not None
    audit.record(env.session, at=env.now(), actor=env.actor, action="account.created",
                 entity="account", entity_id=account.id, account_id=account.id,
                 detail=data.model_dump())
    env.commit(Change("account.created", account.id, account.id))
    return account


def get_account(session: Session, account_id: int) -> Account:
    return get_or_404(session, Account, account_id)


def list_accounts(session: Session, *, limit: int = 100, offset: int = 0) -> list[Account]:
    return list(session.exec(select(Account).order_by(col(Account.id)).offset(offset).limit(limit)))

"""Users: named user ids (platform-wide unique, never generic: R1/R7), an
extension per account within the plan's limit (R21), and the flex-seat
maximum (R5) checked at creation.

The account row is locked (SELECT … FOR UPDATE on PostgreSQL; SQLite
serialises writers anyway) while counting, so two concurrent creations cannot
both take the last seat or extension.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.errors import Conflict, Findings
from provisioning.events import Change
from provisioning.models import Account, User
from provisioning.named_users import generic_reason
from provisioning.schemas import UserCreate
from provisioning.services.env import ServiceEnv, get_or_404


def locked_account(env: ServiceEnv, account_id: int) -> Account:
    """The account row, locked for the rest of the transaction where the backend can."""
    account = env.session.exec(select(Account).where(Account.id == account_id).with_for_update()).first()
    if account is None:
        get_or_404(env.session, Account, account_id)  # raises NotFound
    assert account is not None
    return account


def user_count(session: Session, account_id: int, *, up_to: int | None = None) -> int:
    """Users in the account; with `up_to`, counting stops there (a limit check needs no more,
    and a full count of 100,000 users cost ~6 ms on every user created)."""
    if up_to is None:
        return int(session.exec(select(func.count()).select_from(User)
                                .where(User.account_id == account_id)).one())
    some = select(User.id).where(User.account_id == account_id).limit(up_to).subquery()
    return int(session.exec(select(func.count()).select_from(some)).one())


def check_named_user_id(findings: Findings, named_user_id: str, kind: str) -> None:
    reason = generic_reason(named_user_id)
    if reason is not None:
        rule = "R7" if kind == "room" else "R1"
        what = "a meeting room's named user ID (R7, under R1)" if kind == "room" else "a named user ID (R1)"
        findings.error(("named_user_id",), rule, f"generic IDs are refused as {what}: {reason}")


def seat_limits(env: ServiceEnv, account: Account, findings: Findings, *, adding: int = 1) -> None:
    """R21 (extensions per account) and R5 (flex maximum) for `adding` more users. The users are
    counted only when a limit applies, and only up to it (`user_count(up_to=...)`)."""
    plan = env.plans.get(account.plan)
    assert account.id is not None
    if plan is None:
        return
    extension_limit = plan.extension_limit
    flex_maximum = (plan.flex.max_multiplier * account.flex_minimum
                    if plan.flex is not None and account.flex_minimum is not None else None)
    limits = [limit for limit in (extension_limit, flex_maximum) if limit is not None]
    if not limits:
        return
    count = user_count(env.session, account.id, up_to=int(max(limits)) + 1)
    if extension_limit is not None and count + adding > extension_limit:
        findings.error(("extension",), "R21",
                       f"account {account.id} has {count} of at most {extension_limit} extensions "
                       f"on plan {plan.id} (R21)", extension_limit)
    if flex_maximum is not None and count + adding > flex_maximum:
        assert plan.flex is not None
        findings.error(("named_user_id",), "R5",
                       f"flex subscription allows at most {flex_maximum} users "
                       f"({plan.flex.max_multiplier} x minimum {account.flex_minimum}); "
                       f"account {account.id} has {count} (R5)", flex_maximum)


def create_user(env: ServiceEnv, account_id: int, data: UserCreate) -> User:
    s = env.session
    account = locked_account(env, account_id)
    findings = Findings()
    check_named_user_id(findings, data.named_user_id, data.kind)
    findings.raise_errors()
    if s.exec(select(User.id).where(User.account_id == account_id,
                                    User.extension == data.extension)).first() is not None:
        raise Conflict(f"extension {data.extension} already used in account {account_id}",
                       field="extension")
    if s.exec(select(User.id).where(User.named_user_id == data.named_user_id)).first() is not None:
        raise Conflict(f"named_user_id {data.named_user_id} already exists", field="named_user_id")
    seat_limits(env, account, findings)
    findings.raise_errors()
    user = User(account_id=account_id, named_user_id=data.named_user_id, kind=data.kind,
                display_name=data.display_name, extension=data.extension, created_at=env.now())
    s.add(user)
    s.flush()
    assert user.id is not None
    audit.record(s, at=env.now(), actor=env.actor, action="user.created", entity="user",
                 entity_id=user.id, account_id=account_id, detail=data.model_dump())
    env.commit(Change("user.created", user.id, account_id))
    return user


def get_user(session: Session, user_id: int) -> User:
    return get_or_404(session, User, user_id)


def list_users(session: Session, account_id: int, *, limit: int = 100, offset: int = 0) -> list[User]:
    get_or_404(session, Account, account_id)
    stmt = (select(User).where(User.account_id == account_id).order_by(col(User.id))
            .offset(offset).limit(limit))
    return list(session.exec(stmt))

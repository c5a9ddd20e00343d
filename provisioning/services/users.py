"""Users: named user ids (platform-wide unique) with an extension per account.

R1's refusal of generic ids (`admin@`, `sales@` …) arrives with the named-user
rules issue; here only the e-mail form and uniqueness are enforced.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.errors import Conflict
from provisioning.events import Change
from provisioning.models import Account, User
from provisioning.schemas import UserCreate
from provisioning.services.env import ServiceEnv, get_or_404


def create_user(env: ServiceEnv, account_id: int, data: UserCreate) -> User:
    s = env.session
    get_or_404(s, Account, account_id)
    if s.exec(select(User.id).where(User.account_id == account_id,
                                    User.extension == data.extension)).first() is not None:
        raise Conflict(f"extension {data.extension} already used in account {account_id}",
                       field="extension")
    if s.exec(select(User.id).where(User.named_user_id == data.named_user_id)).first() is not None:
        raise Conflict(f"named_user_id {data.named_user_id} already exists", field="named_user_id")
    user = User(account_id=account_id, named_user_id=data.named_user_id,
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

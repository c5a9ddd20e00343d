from __future__ import annotations

from fastapi import APIRouter, status

from provisioning import services
from provisioning.api.deps import EnvDep, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.schemas import UserCreate, UserOut

router = APIRouter(tags=["users"])


@router.post("/accounts/{account_id}/users", status_code=status.HTTP_201_CREATED,
             response_model=UserOut)
def create_user(account_id: int, body: UserCreate, env: EnvDep) -> UserOut:
    return UserOut.model_validate(services.create_user(env, account_id, body))


@router.get("/accounts/{account_id}/users", response_model=list[UserOut])
def list_users(account_id: int, session: SessionDep, limit: Limit = 100,
               offset: Offset = 0) -> list[UserOut]:
    users = services.list_users(session, account_id, limit=limit, offset=offset)
    return [UserOut.model_validate(u) for u in users]


@router.get("/users/{user_id}", response_model=UserOut)
def get_user(user_id: int, session: SessionDep) -> UserOut:
    return UserOut.model_validate(services.get_user(session, user_id))

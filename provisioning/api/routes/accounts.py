from __future__ import annotations

from fastapi import APIRouter, status

from provisioning import services
from provisioning.api.deps import EnvDep, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.schemas import AccountCreate, AccountOut

router = APIRouter(prefix="/accounts", tags=["accounts"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AccountOut)
def create_account(body: AccountCreate, env: EnvDep) -> AccountOut:
    return AccountOut.model_validate(services.create_account(env, body))


@router.get("", response_model=list[AccountOut])
def list_accounts(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> list[AccountOut]:
    return [AccountOut.model_validate(a) for a in services.list_accounts(session, limit=limit, offset=offset)]


@router.get("/{account_id}", response_model=AccountOut)
def get_account(account_id: int, session: SessionDep) -> AccountOut:
    return AccountOut.model_validate(services.get_account(session, account_id))

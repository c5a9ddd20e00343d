from __future__ import annotations

from fastapi import APIRouter, status

from provisioning import services
from provisioning.api.deps import EnvDep, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.schemas import AccountCreate, AccountOut, AllowedPrefixesIn, DepositIn, FlexIn

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


@router.post("/{account_id}/deposit", response_model=AccountOut)
def record_deposit(account_id: int, body: DepositIn, env: EnvDep) -> AccountOut:
    """Record a deposit; `deposit_usd` is the running total (R24: international calling
    is enabled once it reaches the plan's `international.deposit_required_usd`)."""
    return AccountOut.model_validate(services.record_deposit(env, account_id, body.amount_usd))


@router.put("/{account_id}/allowed-prefixes", response_model=AccountOut)
def set_allowed_prefixes(account_id: int, body: AllowedPrefixesIn, env: EnvDep) -> AccountOut:
    """Replace the prefixes this account may call although its plan blocks them (R25)."""
    return AccountOut.model_validate(services.set_allowed_prefixes(env, account_id, body.prefixes))


@router.put("/{account_id}/flex", response_model=AccountOut)
def set_flex(account_id: int, body: FlexIn, env: EnvDep) -> AccountOut:
    """Flex subscription minimum (R5): users are limited to the plan's multiplier x minimum."""
    return AccountOut.model_validate(services.set_flex_minimum(env, account_id, body.minimum))

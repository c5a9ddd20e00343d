"""`GET /accounts/{id}/usage?month=YYYY-MM`: one account's rated calls in a month.

The month is UTC and a call belongs to the month it started in; without
`month` the injected clock's current month is used, so a lab that fast-
forwards time sees the month the gateway counts fair use in.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from provisioning import services
from provisioning.api.deps import Ctx, SessionDep
from provisioning.rating import month_bounds, month_of, summarise
from provisioning.schemas import UsageOut

router = APIRouter(prefix="/accounts", tags=["call records"])


@router.get("/{account_id}/usage", response_model=UsageOut)
def account_usage(account_id: int, ctx: Ctx, session: SessionDep,
                  month: Annotated[str | None, Query(description="YYYY-MM (UTC); default: this month.")]
                  = None) -> dict[str, Any]:
    """Calls, minutes, billable seconds and charges per call type; fair-use minutes used
    against the plan's allowance (R20, R26, R31) and what was admitted as overage."""
    account = services.get_account(session, account_id)  # 404 for an unknown account
    month = month if month is not None else month_of(ctx.now())
    try:
        month_bounds(month)
    except ValueError as exc:
        raise RequestValidationError([{
            "type": "value_error", "loc": ("query", "month"), "msg": str(exc)}]) from None
    store = ctx.cdr_store()
    return summarise(account_id=account_id, month=month, plan_id=account.plan, plan=ctx.plans.get(account.plan),
                     users=store.users_in_account(account_id), groups=store.usage_groups(account_id, month))

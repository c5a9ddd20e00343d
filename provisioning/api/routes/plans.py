"""Service plans (read-only): the data the call policy enforces (R10-R31)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from provisioning.api.deps import Ctx
from provisioning.errors import NotFound

router = APIRouter(prefix="/plans", tags=["plans"])


@router.get("")
def list_plans(ctx: Ctx) -> list[dict[str, Any]]:
    """Every plan with all its parameters; rates are USD per minute."""
    return [p.to_dict() for p in ctx.plans]


@router.get("/{plan_id}")
def get_plan(plan_id: str, ctx: Ctx) -> dict[str, Any]:
    plan = ctx.plans.get(plan_id)
    if plan is None:
        raise NotFound("plan", plan_id)
    return plan.to_dict()

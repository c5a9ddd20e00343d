"""Hardware profiles and the audit trail (read-only, for ops scripts)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import col, select

from provisioning.api.deps import Ctx, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.errors import NotFound
from provisioning.models import AuditEvent
from provisioning.schemas import AuditOut, HardwareProfileOut

router = APIRouter(tags=["catalog"])


@router.get("/hardware-profiles", response_model=list[HardwareProfileOut])
def list_profiles(ctx: Ctx) -> list[HardwareProfileOut]:
    return [HardwareProfileOut(**p.to_dict()) for p in ctx.catalog]


@router.get("/hardware-profiles/{profile_id}", response_model=HardwareProfileOut)
def get_profile(profile_id: str, ctx: Ctx) -> HardwareProfileOut:
    profile = ctx.catalog.get(profile_id)
    if profile is None:
        raise NotFound("hardware profile", profile_id)
    return HardwareProfileOut(**profile.to_dict())


@router.get("/audit", response_model=list[AuditOut], tags=["audit"])
def list_audit(session: SessionDep, account_id: Annotated[int | None, Query()] = None,
               entity: Annotated[str | None, Query(max_length=32)] = None,
               entity_id: Annotated[int | None, Query()] = None,
               limit: Limit = 100, offset: Offset = 0) -> list[AuditOut]:
    """Newest first."""
    stmt = select(AuditEvent)
    if account_id is not None:
        stmt = stmt.where(AuditEvent.account_id == account_id)
    if entity is not None:
        stmt = stmt.where(AuditEvent.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(AuditEvent.entity_id == entity_id)
    stmt = stmt.order_by(col(AuditEvent.id).desc()).offset(offset).limit(limit)
    return [AuditOut.model_validate(e) for e in session.exec(stmt)]

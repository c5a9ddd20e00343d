"""GoTo Room kits and equipment orders (R40-R42). Every window is computed with
the injected clock; responses show the due times (`tracking_due_at`,
`claim_deadline`, `warranty_until`) so ops see them before they pass."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from sqlmodel import Session

from provisioning.api.deps import Ctx, EnvDep, SessionDep
from provisioning.models import EquipmentOrder
from provisioning.orders import claim_deadline, tracking_due, tracking_late, warranty_until
from provisioning.schemas import (
    CancelIn,
    ClaimIn,
    ClaimOut,
    ComponentOut,
    OrderCreate,
    OrderOut,
    RoomKitCreate,
    RoomKitOut,
    ShipIn,
)
from provisioning.services import room_kits as rk

router = APIRouter(tags=["room kits and orders"])
_WINDOW: dict[int | str, dict[str, Any]] = {
    409: {"description": "Outside the rule's window (R41, R42) or not allowed in this state."}}


def order_out(session: Session, order: EquipmentOrder, now: datetime) -> OrderOut:
    """The order with its windows computed at `now` (the injected clock)."""
    assert order.id is not None
    return OrderOut.model_validate({
        **order.model_dump(),
        "tracking_due_at": tracking_due(order.ordered_at),
        "tracking_late": tracking_late(order.ordered_at, order.shipped_at, now),
        "claim_deadline": claim_deadline(order.delivered_at) if order.delivered_at else None,
        "warranty_until": warranty_until(order.purchased_at),
        "claims": [ClaimOut.model_validate(c) for c in rk.order_claims(session, order.id)],
    })


def kit_out(session: Session, kit_id: int, now: datetime) -> RoomKitOut:
    kit, comps, order = rk.get_room_kit(session, kit_id)
    return RoomKitOut.model_validate({**kit.model_dump(),
                                      "components": [ComponentOut.model_validate(c) for c in comps],
                                      "order": order_out(session, order, now)})


@router.post("/accounts/{account_id}/room-kits", status_code=status.HTTP_201_CREATED, response_model=RoomKitOut)
def create_room_kit(account_id: int, body: RoomKitCreate, env: EnvDep) -> RoomKitOut:
    """A room kit and its order; components must cover R40's five parts."""
    kit = rk.create_room_kit(env, account_id, body)
    assert kit.id is not None
    return kit_out(env.session, kit.id, env.now())


@router.get("/accounts/{account_id}/room-kits", response_model=list[RoomKitOut])
def list_room_kits(account_id: int, session: SessionDep, ctx: Ctx) -> list[RoomKitOut]:
    return [kit_out(session, k, ctx.now()) for k in rk.list_room_kits(session, account_id)]


@router.get("/room-kits/{kit_id}", response_model=RoomKitOut)
def get_room_kit(kit_id: int, session: SessionDep, ctx: Ctx) -> RoomKitOut:
    return kit_out(session, kit_id, ctx.now())


@router.post("/accounts/{account_id}/orders", status_code=status.HTTP_201_CREATED, response_model=OrderOut)
def create_order(account_id: int, body: OrderCreate, env: EnvDep) -> OrderOut:
    return order_out(env.session, rk.create_order(env, account_id, body), env.now())


@router.get("/accounts/{account_id}/orders", response_model=list[OrderOut])
def list_orders(account_id: int, session: SessionDep, ctx: Ctx,
                late: Annotated[bool | None, Query(description="Only orders whose tracking number is "
                                                   "(or was) late, R40.")] = None) -> list[OrderOut]:
    out = [order_out(session, o, ctx.now()) for o in rk.list_orders(session, account_id)]
    return [o for o in out if late is None or o.tracking_late == late]


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(order_id: int, session: SessionDep, ctx: Ctx) -> OrderOut:
    return order_out(session, rk.get_order(session, order_id), ctx.now())


@router.post("/orders/{order_id}/ship", response_model=OrderOut, responses=_WINDOW)
def ship(order_id: int, body: ShipIn, env: EnvDep) -> OrderOut:
    """Record the tracking number (R40: due within 7 business days; later is flagged late)."""
    return order_out(env.session, rk.advance_order(env, order_id, "ship", tracking_number=body.tracking_number),
                     env.now())


@router.post("/orders/{order_id}/deliver", response_model=OrderOut, responses=_WINDOW)
def deliver(order_id: int, env: EnvDep) -> OrderOut:
    """Delivered: the 48-hour claim window starts (R41)."""
    return order_out(env.session, rk.advance_order(env, order_id, "deliver"), env.now())


@router.post("/orders/{order_id}/complete", response_model=OrderOut, responses=_WINDOW)
def complete(order_id: int, env: EnvDep) -> OrderOut:
    """Every part received and working (also after a missing-parts claim)."""
    return order_out(env.session, rk.advance_order(env, order_id, "complete"), env.now())


@router.post("/orders/{order_id}/install", response_model=OrderOut, responses=_WINDOW)
def install(order_id: int, env: EnvDep) -> OrderOut:
    """Installed in the room: from now on the kit counts as used (R41: not returnable)."""
    return order_out(env.session, rk.advance_order(env, order_id, "install"), env.now())


@router.post("/orders/{order_id}/activate", response_model=OrderOut, responses=_WINDOW)
def activate(order_id: int, env: EnvDep) -> OrderOut:
    return order_out(env.session, rk.advance_order(env, order_id, "activate"), env.now())


@router.post("/orders/{order_id}/claims", status_code=status.HTTP_201_CREATED, response_model=ClaimOut,
             responses=_WINDOW)
def file_claim(order_id: int, body: ClaimIn, env: EnvDep) -> ClaimOut:
    """`missing_parts` within 48 h of delivery; `warranty` within 12 months of purchase (R41)."""
    return ClaimOut.model_validate(rk.file_claim(env, order_id, body))


@router.post("/orders/{order_id}/cancel", response_model=OrderOut, responses=_WINDOW)
def cancel(order_id: int, body: CancelIn, env: EnvDep) -> OrderOut:
    """Free within 24 h; within 30 days with written notice and a 25 % restocking fee (R42)."""
    return order_out(env.session, rk.cancel_order(env, order_id, written_notice=body.written_notice), env.now())

"""GoTo Room kits and equipment orders on the injected clock (R40, R41, R42).

A room kit is a named room (a user of kind `room`, R7) plus components that
must cover audio, camera, computer, input device and installation sheet
(R40). Creating a kit places its order. The windows and the order state
table are pure (`provisioning.orders`); this module applies them with
`env.now()`, writes, audits and publishes.

Refusals that depend on time are 409 naming the rule, and are audited too
(`order.claim_refused`, `order.cancel_refused`): who asked, when, and why not.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.errors import Conflict, Findings, Invalid
from provisioning.events import Change
from provisioning.models import Account, Claim, EquipmentOrder, RoomKit, RoomKitComponent, User
from provisioning.orders import (
    KIT_ROLES,
    ORDER_TRANSITIONS,
    RECEIVED_STATES,
    USED_STATES,
    cancel_terms,
    claim_deadline,
    restocking_fee,
    warranty_until,
)
from provisioning.schemas import ClaimIn, OrderCreate, RoomKitCreate
from provisioning.services.env import ServiceEnv, get_or_404


def _component_roles(env: ServiceEnv, data: RoomKitCreate, findings: Findings) -> list[list[str]]:
    roles: list[list[str]] = []
    serials: set[str] = set()
    for i, comp in enumerate(data.components):
        profile = env.catalog.get(comp.model)
        if profile is not None and profile.kind != "room_kit_component":
            findings.error(("components", i, "model"), "R40",
                           f"{profile.id} is a {profile.kind}, not a room kit component")
            roles.append([])
        elif profile is not None:
            if comp.role is not None and comp.role not in profile.room_kit_roles:
                findings.error(("components", i, "role"), "R40",
                               f"{profile.model} is not a {comp.role} device", list(profile.room_kit_roles))
            roles.append(list(profile.room_kit_roles))
        elif comp.role is None:
            findings.error(("components", i, "role"), "R40",
                           f"{comp.model!r} is not in the catalog: say which role it plays", list(KIT_ROLES))
            roles.append([])
        else:
            roles.append([comp.role])
        if comp.serial in serials:
            findings.error(("components", i, "serial"), "R40", f"serial {comp.serial} listed twice")
        serials.add(comp.serial)
    covered = {r for rs in roles for r in rs}
    missing = [r for r in KIT_ROLES if r not in covered]
    if missing:
        findings.error(("components",), "R40",
                       f"a GoTo Room kit has audio device, camera, computer, input device and installation "
                       f"sheet (R40); missing: {', '.join(missing)}", missing)
    return roles


def create_room_kit(env: ServiceEnv, account_id: int, data: RoomKitCreate) -> RoomKit:
    s = env.session
    get_or_404(s, Account, account_id)
    findings = Findings()
    room = s.get(User, data.room_user_id)
    if room is None or room.account_id != account_id:
        findings.error(("room_user_id",), "user.account", f"user {data.room_user_id} not found in account {account_id}")
    elif room.kind != "room":
        findings.error(("room_user_id",), "R7", f"user {room.id} is a person; a room kit belongs to a "
                       "meeting room's named user (kind room, R7)")
    roles = _component_roles(env, data, findings)
    findings.raise_errors()
    now = env.now()
    kit = RoomKit(account_id=account_id, room_user_id=data.room_user_id, name=data.name, state="ordered",
                  created_at=now)
    s.add(kit)
    s.flush()
    assert kit.id is not None
    for comp, rs in zip(data.components, roles, strict=True):
        s.add(RoomKitComponent(room_kit_id=kit.id, roles=rs, model=comp.model, serial=comp.serial))
    order = EquipmentOrder(account_id=account_id, room_kit_id=kit.id, description=f"GoTo Room kit: {data.name}",
                           amount_usd=data.amount_usd, state="ordered", ordered_at=now,
                           purchased_at=data.purchased_at or now)
    s.add(order)
    s.flush()
    assert order.id is not None
    audit.record(s, at=now, actor=env.actor, action="room_kit.created", entity="room_kit", entity_id=kit.id,
                 account_id=account_id, detail={**data.model_dump(mode="json"), "order_id": order.id})
    env.commit(Change("room_kit.created", kit.id, account_id), Change("order.created", order.id, account_id))
    return kit


def create_order(env: ServiceEnv, account_id: int, data: OrderCreate) -> EquipmentOrder:
    get_or_404(env.session, Account, account_id)
    now = env.now()
    order = EquipmentOrder(account_id=account_id, description=data.description, amount_usd=data.amount_usd,
                           state="ordered", ordered_at=now, purchased_at=data.purchased_at or now)
    env.session.add(order)
    env.session.flush()
    assert order.id is not None
    audit.record(env.session, at=now, actor=env.actor, action="order.created", entity="order",
                 entity_id=order.id, account_id=account_id, detail=data.model_dump(mode="json"))
    env.commit(Change("order.created", order.id, account_id))
    return order


def _transition(order: EquipmentOrder, action: str) -> str:
    target = ORDER_TRANSITIONS.get((order.state, action))
    if target is None:
        raise Conflict(f"order {order.id} is {order.state}; cannot {action.replace('_', ' ')}")
    return target


_STAMP = {"ship": "shipped_at", "deliver": "delivered_at", "complete": "completed_at",
          "install": "installed_at", "activate": "activated_at"}


def advance_order(env: ServiceEnv, order_id: int, action: str, *, tracking_number: str | None = None) -> EquipmentOrder:
    """ship (with tracking number, R40) → deliver → complete → install → activate."""
    s = env.session
    order = get_or_404(s, EquipmentOrder, order_id)
    order.state = _transition(order, action)
    now = env.now()
    setattr(order, _STAMP[action], now)
    detail: dict[str, Any] = {"state": order.state}
    if action == "ship":
        order.tracking_number = tracking_number
        detail["tracking_number"] = tracking_number
    _sync_kit(s, order)
    s.add(order)
    audit.record(s, at=now, actor=env.actor, action=f"order.{order.state}", entity="order", entity_id=order_id,
                 account_id=order.account_id, detail=detail)
    env.commit(Change(f"order.{order.state}", order_id, order.account_id))
    return order


def _sync_kit(session: Session, order: EquipmentOrder) -> None:
    if order.room_kit_id is not None:
        kit = session.get(RoomKit, order.room_kit_id)
        if kit is not None:
            kit.state = order.state
            session.add(kit)


def _refuse(env: ServiceEnv, order: EquipmentOrder, action: str, message: str, rule_id: str,
            detail: dict[str, Any]) -> Conflict:
    """Audit a time-window refusal (committed) and return the error to raise."""
    assert order.id is not None
    audit.record(env.session, at=env.now(), actor=env.actor, action=action, entity="order", entity_id=order.id,
                 account_id=order.account_id, detail={**detail, "rule_id": rule_id, "reason": message})
    env.session.commit()
    return Conflict(message, rule_id=rule_id)


def file_claim(env: ServiceEnv, order_id: int, data: ClaimIn) -> Claim:
    """R41: missing/broken parts within 48 h of delivery; warranty replacement
    within 12 months of purchase, "as is" after."""
    s = env.session
    order = get_or_404(s, EquipmentOrder, order_id)
    if order.state not in RECEIVED_STATES or order.delivered_at is None:
        raise Conflict(f"order {order_id} is {order.state}: claims start at delivery")
    _check_components(s, order, data.component_ids)
    now = env.now()
    detail = data.model_dump()
    if data.kind == "missing_parts":
        deadline = claim_deadline(order.delivered_at)
        if now > deadline:
            raise _refuse(env, order, "order.claim_refused",
                          f"missing or broken parts must be reported within 48 hours of delivery "
                          f"(delivered {order.delivered_at.isoformat()}, deadline {deadline.isoformat()}) (R41)",
                          "R41", detail)
        order.state = _transition(order, "claim_missing")
        _sync_kit(s, order)
    else:
        until = warranty_until(order.purchased_at)
        if now > until:
            raise _refuse(env, order, "order.claim_refused",
                          f"warranty replacement ended {until.isoformat()}, 12 months after purchase: "
                          "the kit is provided \"as is\", manufacturer warranty only (R41)", "R41", detail)
    claim = Claim(order_id=order_id, kind=data.kind, at=now, component_ids=list(data.component_ids),
                  description=data.description, outcome="accepted", rule_id="R41")
    s.add(claim)
    s.add(order)
    s.flush()
    assert claim.id is not None
    audit.record(s, at=now, actor=env.actor, action="order.claim_accepted", entity="order", entity_id=order_id,
                 account_id=order.account_id, detail={**detail, "claim_id": claim.id,
                                                      "resolution": "replaced free of charge"})
    env.commit(Change("order.claim_accepted", order_id, order.account_id))
    return claim


def _check_components(session: Session, order: EquipmentOrder, component_ids: list[int]) -> None:
    if not component_ids:
        return
    if order.room_kit_id is None:
        raise Invalid("component_ids", f"order {order.id} has no room kit components", rule="R41")
    own = set(session.exec(select(RoomKitComponent.id).where(RoomKitComponent.room_kit_id == order.room_kit_id)))
    for i, cid in enumerate(component_ids):
        if cid not in own:
            raise Invalid(("component_ids", i), f"component {cid} is not part of this order's kit", rule="R41")


def cancel_order(env: ServiceEnv, order_id: int, *, written_notice: bool) -> EquipmentOrder:
    """R42: free within 24 h; within 30 days with written notice and a 25 % restocking
    fee; refused after. Used kits are not returnable (R41)."""
    s = env.session
    order = get_or_404(s, EquipmentOrder, order_id)
    detail: dict[str, Any] = {"written_notice": written_notice, "state": order.state}
    if order.state in USED_STATES:
        raise _refuse(env, order, "order.cancel_refused",
                      f"order {order_id} is {order.state}: used kits are not returnable (R41)", "R41", detail)
    if order.state == "cancelled":
        raise Conflict(f"order {order_id} is already cancelled")
    terms = cancel_terms(order.ordered_at, env.now())
    if not terms.allowed:
        raise _refuse(env, order, "order.cancel_refused",
                      "equipment orders can be cancelled within 30 days of the order only (R42)", "R42", detail)
    if terms.needs_written_notice and not written_notice:
        raise Invalid("written_notice", "after 24 hours a cancellation needs written notice (R42)",
                      rule="R42")
    order.state = _transition(order, "cancel")
    order.cancelled_at = env.now()
    order.restocking_fee_usd = restocking_fee(order.amount_usd, terms.fee_pct)
    _sync_kit(s, order)
    s.add(order)
    audit.record(s, at=env.now(), actor=env.actor, action="order.cancelled", entity="order", entity_id=order_id,
                 account_id=order.account_id,
                 detail={**detail, "fee_pct": terms.fee_pct, "restocking_fee_usd": order.restocking_fee_usd,
                         "rule_id": "R42"})
    env.commit(Change("order.cancelled", order_id, order.account_id))
    return order


def get_order(session: Session, order_id: int) -> EquipmentOrder:
    return get_or_404(session, EquipmentOrder, order_id)


def order_claims(session: Session, order_id: int) -> list[Claim]:
    return list(session.exec(select(Claim).where(Claim.order_id == order_id).order_by(col(Claim.id))))


def list_orders(session: Session, account_id: int) -> list[EquipmentOrder]:
    get_or_404(session, Account, account_id)
    return list(session.exec(select(EquipmentOrder).where(EquipmentOrder.account_id == account_id)
                             .order_by(col(EquipmentOrder.id))))


def get_room_kit(session: Session, kit_id: int) -> tuple[RoomKit, list[RoomKitComponent], EquipmentOrder]:
    kit = get_or_404(session, RoomKit, kit_id)
    comps = list(session.exec(select(RoomKitComponent).where(RoomKitComponent.room_kit_id == kit_id)
                              .order_by(col(RoomKitComponent.id))))
    order = session.exec(select(EquipmentOrder).where(EquipmentOrder.room_kit_id == kit_id)).one()
    return kit, comps, order


def list_room_kits(session: Session, account_id: int) -> list[int]:
    get_or_404(session, Account, account_id)
    return [k for k in session.exec(select(RoomKit.id).where(RoomKit.account_id == account_id)
                                    .order_by(col(RoomKit.id))) if k is not None]

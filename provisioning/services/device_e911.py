"""A device's E911 state: R13 stale flag and prompts, and the whole picture for one device.

Moves are *detected* by `provisioning.e911_store.E911Store.record_registrations`
(the gateway's writer thread); here is what people do about them:

- `confirm_prompt`: the user of a nomadic device says the registered
  location is still right → prompt `confirmed`, stale flag cleared.
- binding a location (`services.devices.bind_location`, `POST
  /devices/{id}/location`) is the "update" answer: it calls `clear_stale`,
  which clears the flag and resolves open prompts as `updated`.

Only the writer thread inserts `device_e911` rows; these functions update an
existing row (no row = the device never registered, so nothing is stale).

`device_status` gathers everything that decides where this device's
emergency call goes, for `GET /devices/{id}/e911`; the gateway reads the
same facts from the directory snapshot instead.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from e911.moves import NOMADIC_KINDS
from provisioning import audit
from provisioning.errors import Conflict, NotFound
from provisioning.events import Change
from provisioning.models import (
    Account,
    Device,
    DeviceE911,
    E911Notice,
    Location,
    LocationPrompt,
    SiteOutage,
)
from provisioning.services.env import ServiceEnv, get_or_404
from provisioning.services.notices import latest_notice

PROMPT_STATUSES = ("open", "confirmed", "updated", "superseded")


def clear_stale(env: ServiceEnv, device: Device, *, resolution: str, location_id: int | None,
                reset_fingerprint: bool = False) -> dict[str, Any]:
    """Clear the device's stale flag and resolve its open prompts (caller commits).

    `reset_fingerprint` (a new location was bound): forget the last network
    too, so the next REGISTER sets a fresh baseline. A user who reports the
    new location *before* moving is then not flagged when the phone comes up
    on the new network; one who reports it after is not flagged twice.

    Returns what was done, for the caller's audit detail:
    `{"stale_cleared": bool, "prompts_resolved": [ids]}`.
    """
    s = env.session
    assert device.id is not None
    now = env.now()
    state = s.get(DeviceE911, device.id)
    was_stale = bool(state is not None and state.location_stale)
    if state is not None and (state.location_stale or (reset_fingerprint and state.last_fingerprint)):
        state.location_stale = False
        state.stale_reason = None
        state.stale_since = None
        if reset_fingerprint:  # registrations older than this bind no longer count
            state.last_fingerprint = None
            state.fingerprint_at = now
        s.add(state)
    prompts = list(s.exec(select(LocationPrompt).where(LocationPrompt.device_id == device.id,
                                                       LocationPrompt.status == "open")))
    for prompt in prompts:
        prompt.status = resolution
        prompt.resolved_at = now
        prompt.resolved_by = env.actor
        s.add(prompt)
        audit.record(s, at=now, actor=env.actor, action=f"location_prompt.{resolution}", entity="device",
                     entity_id=device.id, account_id=device.account_id,
                     detail={"prompt_id": prompt.id, "location_id": location_id, "rule_id": "R13"})
    return {"stale_cleared": was_stale, "prompts_resolved": [p.id for p in prompts]}


def confirm_prompt(env: ServiceEnv, device_id: int, prompt_id: int) -> LocationPrompt:
    """The user confirms the registered location after a move (R13): the flag clears.

    409 when the prompt is no longer open (confirmed, answered by a new
    location, or superseded by a later move's prompt).
    """
    s = env.session
    device = get_or_404(s, Device, device_id)
    prompt = s.get(LocationPrompt, prompt_id)
    if prompt is None or prompt.device_id != device_id:
        raise NotFound("location prompt", prompt_id)
    if prompt.status != "open":
        raise Conflict(f"location prompt {prompt_id} is {prompt.status}, not open", rule_id="R13")
    clear_stale(env, device, resolution="confirmed", location_id=device.location_id)
    env.commit(Change("device.location_confirmed", device_id, device.account_id))
    s.refresh(prompt)
    return prompt


def list_prompts(session: Session, device_id: int, *, status: str | None = None) -> list[LocationPrompt]:
    get_or_404(session, Device, device_id)
    stmt = select(LocationPrompt).where(LocationPrompt.device_id == device_id)
    if status is not None:
        stmt = stmt.where(LocationPrompt.status == status)
    return list(session.exec(stmt.order_by(col(LocationPrompt.id))))


def active_outages(session: Session, location_id: int) -> list[SiteOutage]:
    return list(session.exec(select(SiteOutage).where(SiteOutage.location_id == location_id,
                                                      col(SiteOutage.ended_at).is_(None))
                             .order_by(col(SiteOutage.id))))


def forwarding(device: Device, *, acknowledged: bool, pending: bool) -> tuple[bool, str]:
    """R15: is automatic location forwarding on for this device, and why (not)."""
    if device.state != "active":
        return False, f"device is {device.state}, not active"
    if device.location_id is None:
        return False, "no registered location"
    if pending or not acknowledged:
        return False, "customer notice not acknowledged yet (R15)"
    return True, "customer notice acknowledged (R15)"


def device_status(session: Session, device_id: int) -> dict[str, Any]:
    """Everything that decides where this device's emergency call goes (R10-R15)."""
    device = get_or_404(session, Device, device_id)
    account = get_or_404(session, Account, device.account_id)
    state = session.get(DeviceE911, device_id)
    notice = latest_notice(session, device_id)
    pending = session.exec(select(E911Notice.id).where(E911Notice.device_id == device_id,
                                                       col(E911Notice.acknowledged_at).is_(None))).first()
    acked = session.exec(select(E911Notice.id).where(E911Notice.device_id == device_id,
                                                     col(E911Notice.acknowledged_at).is_not(None))).first()
    on, why = forwarding(device, acknowledged=acked is not None, pending=pending is not None)
    location = session.get(Location, device.location_id) if device.location_id is not None else None
    open_prompts = len(list(session.exec(select(LocationPrompt.id).where(
        LocationPrompt.device_id == device_id, LocationPrompt.status == "open"))))
    return {
        "device_id": device_id, "account_id": device.account_id, "state": device.state, "kind": device.kind,
        "nomadic": device.kind in NOMADIC_KINDS, "location_id": device.location_id,
        "location_valid": location is not None and location.validation_status == "valid",
        "location_forwarding": on, "forwarding_reason": why,
        "location_stale": bool(state and state.location_stale),
        "stale_reason": state.stale_reason if state else None,
        "stale_since": state.stale_since if state else None,
        "last_fingerprint": state.last_fingerprint if state else None,
        "fingerprint_at": state.fingerprint_at if state else None,
        "notice": notice, "open_prompts": open_prompts,
        "outages": [o.kind for o in active_outages(session, location.id)] if location and location.id else [],
        "stale_policy": account.stale_policy,
    }

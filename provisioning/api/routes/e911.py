"""E911 routes (issue #4): account settings and suspension, R15 notices, R13 prompts and device
state, R11 site outages, and the stored emergency calls, PSAP verdicts and Kari's Law notifications.

Reads of gateway-written records (`/emergency/...`) come from the database
(`provisioning.e911_store`, `provisioning.notifier`), so they survive restarts
and show calls of every gateway worker.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from provisioning.api.deps import EnvDep, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.e911_schemas import (
    AccountE911Update,
    DeviceE911Out,
    EmergencyCallOut,
    NoticeAck,
    NoticeOut,
    NotificationOut,
    OutageIn,
    OutageOut,
    PromptOut,
    RouteKind,
)
from provisioning.e911_store import list_emergency_calls, list_psap_calls
from provisioning.models import SiteOutage
from provisioning.notifier import list_notifications
from provisioning.schemas import AccountOut
from provisioning.services import account_e911, device_e911, notices, outages

router = APIRouter(tags=["e911"])

_STATE: dict[int | str, dict[str, Any]] = {409: {"description": "The current state does not allow it."}}


# --- accounts ----------------------------------------------------------------------------------

@router.patch("/accounts/{account_id}", response_model=AccountOut, tags=["accounts"])
def update_account(account_id: int, body: AccountE911Update, env: EnvDep) -> AccountOut:
    """E911 settings: `stale_policy` (R13) and `notification_url` (Kari's Law webhook)."""
    changes = body.model_dump(exclude_unset=True)
    return AccountOut.model_validate(account_e911.update_e911_settings(env, account_id, changes))


@router.post("/accounts/{account_id}/suspend", response_model=AccountOut, tags=["accounts"])
def suspend_account(account_id: int, env: EnvDep) -> AccountOut:
    """R11 "deactivated": registrations end and emergency calls fail with the R11 reason."""
    return AccountOut.model_validate(account_e911.suspend_account(env, account_id))


@router.post("/accounts/{account_id}/resume", response_model=AccountOut, tags=["accounts"], responses=_STATE)
def resume_account(account_id: int, env: EnvDep) -> AccountOut:
    return AccountOut.model_validate(account_e911.resume_account(env, account_id))


# --- R15 notices ---------------------------------------------------------------------------------

@router.get("/devices/{device_id}/e911-notices", response_model=list[NoticeOut])
def device_notices(device_id: int, session: SessionDep) -> list[NoticeOut]:
    return [NoticeOut.model_validate(n) for n in notices.list_notices(session, device_id=device_id)]


@router.get("/accounts/{account_id}/e911-notices", response_model=list[NoticeOut])
def account_notices(account_id: int, session: SessionDep,
                    pending: Annotated[bool | None, Query(description="Only unacknowledged (true) "
                                                                       "or acknowledged (false).")] = None,
                    limit: Limit = 100, offset: Offset = 0) -> list[NoticeOut]:
    rows = notices.list_notices(session, account_id=account_id, pending=pending, limit=limit, offset=offset)
    return [NoticeOut.model_validate(n) for n in rows]


@router.post("/devices/{device_id}/e911-notice:acknowledge", response_model=NoticeOut,
             responses={409: {"description": "The device has no notice (never activated on a plan "
                                             "with emergency calling), rule_id R15."}})
def acknowledge_notice(device_id: int, env: EnvDep, body: NoticeAck | None = None) -> NoticeOut:
    """The customer acknowledged that the device is active (and the limits of emergency
    calling): automatic location and callback forwarding goes on (R15)."""
    by = body.acknowledged_by if body is not None else None
    return NoticeOut.model_validate(notices.acknowledge_notice(env, device_id, by))


# --- R13 prompts and device state -----------------------------------------------------------------

@router.get("/devices/{device_id}/e911", response_model=DeviceE911Out)
def device_e911_status(device_id: int, session: SessionDep) -> DeviceE911Out:
    """Everything that decides where this device's emergency call goes: state, location,
    R15 forwarding (and why), R13 stale flag and fingerprint, notice, prompts, R11 outages."""
    data = device_e911.device_status(session, device_id)
    notice = data.pop("notice")
    return DeviceE911Out(**data, notice=NoticeOut.model_validate(notice) if notice is not None else None)


@router.get("/devices/{device_id}/location-prompts", response_model=list[PromptOut])
def list_prompts(device_id: int, session: SessionDep,
                 status: Annotated[str | None, Query(pattern="^(open|confirmed|updated|superseded)$")] = None,
                 ) -> list[PromptOut]:
    return [PromptOut.model_validate(p) for p in device_e911.list_prompts(session, device_id, status=status)]


@router.post("/devices/{device_id}/location-prompts/{prompt_id}:confirm", response_model=PromptOut,
             responses=_STATE)
def confirm_prompt(device_id: int, prompt_id: int, env: EnvDep) -> PromptOut:
    """The user confirms the registered location after a move: the stale flag clears (R13).
    To give a new location instead, `POST /devices/{id}/location`."""
    return PromptOut.model_validate(device_e911.confirm_prompt(env, device_id, prompt_id))


# --- R11 outages -----------------------------------------------------------------------------------

def outage_out(o: SiteOutage) -> OutageOut:
    return OutageOut.model_validate({**o.model_dump(), "active": o.ended_at is None})


@router.post("/locations/{location_id}/outages", status_code=status.HTTP_201_CREATED, response_model=OutageOut,
             responses={409: {"description": "An outage of this kind already runs at the site (R11)."}})
def start_outage(location_id: int, body: OutageIn, env: EnvDep) -> OutageOut:
    """Start a simulated outage at this site: emergency calls from its devices fail (R11)."""
    return outage_out(outages.start_outage(env, location_id, body.kind, body.note))


@router.post("/outages/{outage_id}:end", response_model=OutageOut, responses=_STATE)
def end_outage(outage_id: int, env: EnvDep) -> OutageOut:
    return outage_out(outages.end_outage(env, outage_id))


@router.get("/locations/{location_id}/outages", response_model=list[OutageOut])
def location_outages(location_id: int, session: SessionDep, active: Annotated[bool | None, Query()] = None,
                     ) -> list[OutageOut]:
    return [outage_out(o) for o in outages.list_outages(session, location_id=location_id, active=active)]


@router.get("/outages", response_model=list[OutageOut])
def list_outages(session: SessionDep, account_id: Annotated[int | None, Query()] = None,
                 active: Annotated[bool | None, Query()] = None, limit: Limit = 100,
                 offset: Offset = 0) -> list[OutageOut]:
    rows = outages.list_outages(session, account_id=account_id, active=active, limit=limit, offset=offset)
    return [outage_out(o) for o in rows]


# --- what the gateway recorded -------------------------------------------------------------------

@router.get("/emergency/calls", response_model=list[EmergencyCallOut])
def emergency_calls(session: SessionDep, account_id: Annotated[int | None, Query()] = None,
                    device_id: Annotated[int | None, Query()] = None,
                    route: Annotated[RouteKind | None, Query(description="psap | national_centre | refuse")] = None,
                    call_id: Annotated[str | None, Query(max_length=255)] = None,
                    limit: Limit = 100, offset: Offset = 0) -> list[EmergencyCallOut]:
    """Emergency and test calls, newest first: route decision with rule and reason, the exact
    PIDF-LO sent, the callback, times, and the PSAP simulator's verdict (`psap`)."""
    rows = list_emergency_calls(session, account_id=account_id, device_id=device_id, route_kind=route,
                                call_id=call_id, limit=limit, offset=offset)
    return [EmergencyCallOut.model_validate({**call.model_dump(), "psap": psap.data if psap else None})
            for call, psap in rows]


@router.get("/emergency/psap-calls")
def psap_calls(session: SessionDep, role: Annotated[str | None, Query(max_length=24)] = None,
               verdict: Annotated[str | None, Query(pattern="^(pass|fail)$")] = None,
               device_id: Annotated[str | None, Query(max_length=255)] = None,
               limit: Limit = 100, offset: Offset = 0) -> list[dict[str, Any]]:
    """The PSAP simulator's stored records (`PsapCall.to_dict()` shape), newest first."""
    return [r.data for r in list_psap_calls(session, role=role, verdict=verdict, device_id=device_id,
                                            limit=limit, offset=offset)]


@router.get("/emergency/notifications", response_model=list[NotificationOut])
def notifications(session: SessionDep, account_id: Annotated[int | None, Query()] = None,
                  call_id: Annotated[str | None, Query(max_length=255)] = None,
                  status: Annotated[str | None, Query(
                      pattern="^(pending|retrying|sent|failed|no_destination)$")] = None,
                  limit: Limit = 100, offset: Offset = 0) -> list[NotificationOut]:
    """Kari's Law notifications, newest first, with delivery status and attempts."""
    rows = list_notifications(session, account_id=account_id, call_id=call_id, status=status, limit=limit,
                              offset=offset)
    return [NotificationOut.model_validate(n) for n in rows]

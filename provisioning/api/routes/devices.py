"""Devices, their lifecycle and their lines. A SIP password appears only in the
response that created it (device creation, rotation, reassignment)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from provisioning import services
from provisioning.api.deps import EnvDep, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.bulk import BulkInvalid, import_devices
from provisioning.errors import Invalid, Issue
from provisioning.models import Device, Line
from provisioning.schemas import (
    BulkCreatedDevice,
    BulkDevicesIn,
    BulkDevicesOut,
    BulkRowError,
    DeviceCreate,
    DeviceCreated,
    DeviceLocation,
    DeviceOut,
    DeviceUpdate,
    IssueOut,
    LastFetch,
    LineCredentials,
    LineOut,
    LineReassign,
)
from provisioning.services import ProvisionedDevice

router = APIRouter(tags=["devices"])

_STATE_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The device's state does not allow this action."}}


def line_out(line: Line) -> LineOut:
    return LineOut(id=line.id or 0, index=line.index, user_id=line.user_id, sip_username=line.sip_username,
                   sip_domain=line.realm, port=line.port, purpose=line.purpose,
                   credential_generation=line.credential_generation)


def _issues(warnings: list[Issue]) -> list[IssueOut]:
    return [IssueOut(**w.to_dict()) for w in warnings]


def _device_fields(device: Device) -> dict[str, object]:
    data: dict[str, object] = device.model_dump()
    data["provisioning_digest"] = device.prov_ha1 is not None
    if device.last_fetch_at is not None:
        data["last_fetch"] = LastFetch(at=device.last_fetch_at, file=device.last_fetch_file,
                                       user_agent=device.last_fetch_ua, ip=device.last_fetch_ip,
                                       firmware=device.last_fetch_firmware)
    return data


def device_out(pd: ProvisionedDevice) -> DeviceOut:
    data = DeviceOut.model_validate({**_device_fields(pd.device), "lines": [], "warnings": []})
    data.lines = [line_out(ln) for ln in pd.lines]
    data.warnings = _issues(pd.warnings)
    return data


@router.post("/accounts/{account_id}/devices", status_code=status.HTTP_201_CREATED,
             response_model=DeviceCreated,
             responses={422: {"description": "The device does not fit its hardware profile: "
                                             "`detail[]` has field, rule and limit per problem."}})
def create_device(account_id: int, body: DeviceCreate, env: EnvDep) -> DeviceCreated:
    pd = services.create_device(env, account_id, body)
    lines = [LineCredentials(**line_out(ln).model_dump(), sip_password=pd.passwords[ln.id or 0])
             for ln in pd.lines]
    return DeviceCreated.model_validate({**_device_fields(pd.device), "lines": lines,
                                         "warnings": _issues(pd.warnings)})


@router.post("/accounts/{account_id}/devices:bulk", status_code=status.HTTP_201_CREATED,
             response_model=BulkDevicesOut,
             responses={422: {"description": "All-or-nothing batch refused: `detail[]` lists every "
                                             "problem of every row (loc = body, devices, row, field)."}})
def create_devices_bulk(account_id: int, body: BulkDevicesIn, env: EnvDep) -> BulkDevicesOut:
    """Create many devices in one transaction, each checked like a single creation;
    the SIP passwords are in this response only."""
    try:
        result = import_devices(env, account_id, body.devices, all_or_nothing=body.all_or_nothing)
    except BulkInvalid as exc:
        raise Invalid.of([Issue(("devices", e.row, *e.issue.field), e.issue.rule, e.issue.message,
                                e.issue.limit) for e in exc.errors]) from exc
    return BulkDevicesOut(created=len(result.created),
                          devices=[BulkCreatedDevice(row=c.row, id=c.device_id, mac=c.mac, lines=c.lines)
                                   for c in result.created],
                          errors=[BulkRowError(**e.to_dict()) for e in result.errors])


@router.get("/accounts/{account_id}/devices", response_model=list[DeviceOut])
def list_devices(account_id: int, session: SessionDep, limit: Limit = 100,
                 offset: Offset = 0) -> list[DeviceOut]:
    return [device_out(pd) for pd in services.list_devices(session, account_id, limit=limit, offset=offset)]


@router.get("/devices/{device_id}", response_model=DeviceOut)
def get_device(device_id: int, session: SessionDep) -> DeviceOut:
    return device_out(services.get_device(session, device_id))


@router.patch("/devices/{device_id}", response_model=DeviceOut)
def update_device(device_id: int, body: DeviceUpdate, env: EnvDep) -> DeviceOut:
    """Change the model, MAC, codecs, transport …; the device is checked against its
    (new) hardware profile as on creation."""
    pd = services.update_device(env, device_id, body)
    out = device_out(services.get_device(env.session, device_id))
    out.warnings = _issues(pd.warnings)
    return out


@router.post("/devices/{device_id}/location", response_model=DeviceOut)
def bind_location(device_id: int, body: DeviceLocation, env: EnvDep) -> DeviceOut:
    services.bind_location(env, device_id, body.location_id)
    return device_out(services.get_device(env.session, device_id))


@router.post("/devices/{device_id}/activate", response_model=DeviceOut,
             responses={409: {"description": "No emergency location bound (rule R12) where the plan "
                                             "needs one, or the device state does not allow activation."}})
def activate_device(device_id: int, env: EnvDep) -> DeviceOut:
    services.activate_device(env, device_id)
    return device_out(services.get_device(env.session, device_id))


@router.post("/devices/{device_id}/suspend", response_model=DeviceOut, responses=_STATE_CONFLICT)
def suspend_device(device_id: int, env: EnvDep) -> DeviceOut:
    services.suspend_device(env, device_id)
    return device_out(services.get_device(env.session, device_id))


@router.post("/devices/{device_id}/resume", response_model=DeviceOut, responses=_STATE_CONFLICT)
def resume_device(device_id: int, env: EnvDep) -> DeviceOut:
    services.resume_device(env, device_id)
    return device_out(services.get_device(env.session, device_id))


@router.post("/devices/{device_id}/retire", response_model=DeviceOut, responses=_STATE_CONFLICT)
def retire_device(device_id: int, env: EnvDep) -> DeviceOut:
    """Final: lines can never register again and the MAC is free for another device."""
    services.retire_device(env, device_id)
    return device_out(services.get_device(env.session, device_id))


@router.post("/lines/{line_id}/rotate-password", response_model=LineCredentials)
def rotate_password(line_id: int, env: EnvDep) -> LineCredentials:
    line, password = services.rotate_line_password(env, line_id)
    return LineCredentials(**line_out(line).model_dump(), sip_password=password)


@router.post("/lines/{line_id}/reassign", response_model=LineCredentials)
def reassign_line(line_id: int, body: LineReassign, env: EnvDep) -> LineCredentials:
    """R2: the line moves to another named user with a new SIP username and password;
    the previous holder's registrations end and their credentials stop working."""
    line, password = services.reassign_line(env, line_id, body.user_id)
    return LineCredentials(**line_out(line).model_dump(), sip_password=password)

"""Devices and lines. The SIP password appears only in the creation response."""

from __future__ import annotations

from fastapi import APIRouter, status

from provisioning import services
from provisioning.api.deps import EnvDep, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.schemas import (
    DeviceCreate,
    DeviceCreated,
    DeviceLocation,
    DeviceOut,
    LineCredentials,
    LineOut,
)
from provisioning.services import ProvisionedDevice

router = APIRouter(tags=["devices"])


def _line_out(pd: ProvisionedDevice) -> list[LineOut]:
    return [LineOut(id=ln.id or 0, index=ln.index, user_id=ln.user_id, sip_username=ln.sip_username,
                    sip_domain=ln.realm) for ln in pd.lines]


def device_out(pd: ProvisionedDevice) -> DeviceOut:
    data = DeviceOut.model_validate({**pd.device.model_dump(), "lines": []})
    data.lines = _line_out(pd)
    return data


@router.post("/accounts/{account_id}/devices", status_code=status.HTTP_201_CREATED,
             response_model=DeviceCreated)
def create_device(account_id: int, body: DeviceCreate, env: EnvDep) -> DeviceCreated:
    pd = services.create_device(env, account_id, body)
    lines = [LineCredentials(**lo.model_dump(), sip_password=pd.passwords[lo.id]) for lo in _line_out(pd)]
    return DeviceCreated.model_validate({**pd.device.model_dump(), "lines": lines})


@router.get("/accounts/{account_id}/devices", response_model=list[DeviceOut])
def list_devices(account_id: int, session: SessionDep, limit: Limit = 100,
                 offset: Offset = 0) -> list[DeviceOut]:
    return [device_out(pd) for pd in services.list_devices(session, account_id, limit=limit, offset=offset)]


@router.get("/devices/{device_id}", response_model=DeviceOut)
def get_device(device_id: int, session: SessionDep) -> DeviceOut:
    return device_out(services.get_device(session, device_id))


@router.post("/devices/{device_id}/location", response_model=DeviceOut)
def bind_location(device_id: int, body: DeviceLocation, env: EnvDep) -> DeviceOut:
    services.bind_location(env, device_id, body.location_id)
    return device_out(services.get_device(env.session, device_id))


@router.post("/devices/{device_id}/activate", response_model=DeviceOut,
             responses={409: {"description": "No emergency location bound (rule R12), or the "
                                             "device state does not allow activation."}})
def activate_device(device_id: int, env: EnvDep) -> DeviceOut:
    services.activate_device(env, device_id)
    return device_out(services.get_device(env.session, device_id))

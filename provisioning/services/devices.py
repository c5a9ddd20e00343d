"""Devices, their SIP lines and the activation lifecycle (R12).

Lifecycle as an explicit table (h11 style): `(state, action) → new state`.
A missing entry is a 409. Activation additionally needs a bound location: a
device without one is refused naming R12, with the same words the registrar
uses in its 403 reason phrase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.credentials import generate_password, generate_sip_username, ha1_digests
from provisioning.errors import Conflict, Invalid
from provisioning.events import Change
from provisioning.models import Account, Device, Line, Location, User
from provisioning.schemas import DeviceCreate
from provisioning.services.env import ServiceEnv, get_or_404

R12_MESSAGE = "Device not activated: emergency location required (R12)"

TRANSITIONS: dict[tuple[str, str], str] = {
    ("new", "bind_location"): "located",
    ("located", "bind_location"): "located",
    ("active", "bind_location"): "active",  # a move (R13): stays active with the new location
    ("located", "activate"): "active",
    ("active", "activate"): "active",  # idempotent
}

_USERNAME_ATTEMPTS = 20


@dataclass
class ProvisionedDevice:
    """A device with its lines; `passwords` (line id → clear password) is filled
    only right after creation or rotation and never stored."""

    device: Device
    lines: list[Line]
    passwords: dict[int, str] = field(default_factory=dict)


def _transition(device: Device, action: str) -> str:
    target = TRANSITIONS.get((device.state, action))
    if target is None:
        raise Conflict(f"device {device.id} is {device.state}; cannot {action.replace('_', ' ')}")
    return target


def _unique_username(session: Session, extension: str, taken: set[str]) -> str:
    for _ in range(_USERNAME_ATTEMPTS):
        candidate = generate_sip_username(extension)
        if candidate in taken:
            continue
        if session.exec(select(Line.id).where(Line.sip_username == candidate)).first() is None:
            taken.add(candidate)
            return candidate
    raise Conflict("could not generate a unique sip_username, retry")


def create_device(env: ServiceEnv, account_id: int, data: DeviceCreate) -> ProvisionedDevice:
    s = env.session
    get_or_404(s, Account, account_id)
    profile = env.catalog.get(data.hardware_profile)
    if profile is None:
        known = ", ".join(p.id for p in env.catalog)
        raise Invalid("hardware_profile", f"unknown hardware profile {data.hardware_profile!r}; known: {known}")
    if profile.mac_policy == "required" and data.mac is None:
        raise Invalid("mac", f"{profile.id} needs a MAC address")
    if profile.mac_policy == "forbidden" and data.mac is not None:
        raise Invalid("mac", f"{profile.id} has no MAC address; leave mac out")
    if len(data.lines) > profile.max_lines:
        raise Invalid("lines", f"{profile.id} supports at most {profile.max_lines} line(s), got {len(data.lines)}")
    if data.mac is not None and s.exec(select(Device.id).where(Device.mac == data.mac)).first() is not None:
        raise Conflict(f"a device with MAC {data.mac} already exists", field="mac")

    user_ids = [spec.user_id for spec in data.lines]
    users = {u.id: u for u in s.exec(select(User).where(col(User.id).in_(user_ids)))}
    seen: set[int] = set()
    for i, uid in enumerate(user_ids):
        user = users.get(uid)
        if user is None or user.account_id != account_id:
            raise Invalid(("lines", i, "user_id"), f"user {uid} not found in account {account_id}")
        if uid in seen:
            raise Invalid(("lines", i, "user_id"), f"user {uid} already has a line on this device")
        seen.add(uid)

    now = env.now()
    device = Device(account_id=account_id, hardware_profile=profile.id, name=data.name, mac=data.mac,
                    kind=profile.kind, state="new", created_at=now)
    s.add(device)
    s.flush()
    assert device.id is not None
    taken: set[str] = set()
    lines: list[Line] = []
    passwords: list[str] = []
    for index, uid in enumerate(user_ids, start=1):
        username = _unique_username(s, users[uid].extension, taken)
        password = generate_password()
        ha1 = ha1_digests(username, env.sip_domain, password)
        line = Line(device_id=device.id, user_id=uid, index=index, sip_username=username,
                    realm=env.sip_domain, ha1_md5=ha1.md5, ha1_sha256=ha1.sha256,
                    created_at=now, password_set_at=now)
        s.add(line)
        lines.append(line)
        passwords.append(password)
    s.flush()
    audit.record(s, at=now, actor=env.actor, action="device.created", entity="device",
                 entity_id=device.id, account_id=account_id,
                 detail={"hardware_profile": profile.id, "name": data.name, "mac": data.mac,
                         "lines": [{"index": ln.index, "user_id": ln.user_id,
                                    "sip_username": ln.sip_username} for ln in lines]})
    env.commit(Change("device.created", device.id, account_id))
    return ProvisionedDevice(device, lines,
                             {ln.id: pw for ln, pw in zip(lines, passwords, strict=True) if ln.id is not None})


def bind_location(env: ServiceEnv, device_id: int, location_id: int) -> Device:
    s = env.session
    device = get_or_404(s, Device, device_id)
    location = s.get(Location, location_id)
    if location is None or location.account_id != device.account_id:
        raise Invalid("location_id", f"location {location_id} not found in account {device.account_id}")
    previous_state, previous_location = device.state, device.location_id
    device.state = _transition(device, "bind_location")
    device.location_id = location_id
    device.located_at = env.now()
    s.add(device)
    audit.record(s, at=env.now(), actor=env.actor, action="device.located", entity="device",
                 entity_id=device_id, account_id=device.account_id,
                 detail={"location_id": location_id, "previous_location_id": previous_location,
                         "from_state": previous_state, "to_state": device.state})
    env.commit(Change("device.located", device_id, device.account_id))
    return device


def activate_device(env: ServiceEnv, device_id: int) -> Device:
    s = env.session
    device = get_or_404(s, Device, device_id)
    if device.location_id is None and device.state in ("new", "located"):
        raise Conflict(R12_MESSAGE, rule_id="R12")
    previous_state = device.state
    device.state = _transition(device, "activate")
    if previous_state == device.state:
        return device  # already active: nothing changed, nothing to audit
    device.activated_at = env.now()
    s.add(device)
    audit.record(s, at=env.now(), actor=env.actor, action="device.activated", entity="device",
                 entity_id=device_id, account_id=device.account_id,
                 detail={"from_state": previous_state, "to_state": device.state,
                         "location_id": device.location_id})
    env.commit(Change("device.activated", device_id, device.account_id))
    return device


def rotate_line_password(env: ServiceEnv, line_id: int) -> tuple[Line, str]:
    """New password for one line (realm = the current SIP domain); the old one
    stops working as soon as the directory applies the change."""
    s = env.session
    line = get_or_404(s, Line, line_id)
    device = get_or_404(s, Device, line.device_id)
    password = generate_password()
    ha1 = ha1_digests(line.sip_username, env.sip_domain, password)
    line.realm, line.ha1_md5, line.ha1_sha256 = env.sip_domain, ha1.md5, ha1.sha256
    line.password_set_at = env.now()
    s.add(line)
    audit.record(s, at=env.now(), actor=env.actor, action="line.password_rotated", entity="line",
                 entity_id=line_id, account_id=device.account_id,
                 detail={"sip_username": line.sip_username, "realm": line.realm})
    env.commit(Change("line.password_rotated", line_id, device.account_id))
    return line, password


def device_lines(session: Session, device_ids: Sequence[int]) -> dict[int, list[Line]]:
    """Lines of several devices in one query, each list ordered by line index."""
    result: dict[int, list[Line]] = {d: [] for d in device_ids}
    if not device_ids:
        return result
    stmt = select(Line).where(col(Line.device_id).in_(device_ids)).order_by(col(Line.device_id), col(Line.index))
    for line in session.exec(stmt):
        result[line.device_id].append(line)
    return result


def get_device(session: Session, device_id: int) -> ProvisionedDevice:
    device = get_or_404(session, Device, device_id)
    assert device.id is not None
    return ProvisionedDevice(device, device_lines(session, [device.id])[device.id])


def list_devices(session: Session, account_id: int, *, limit: int = 100,
                 offset: int = 0) -> list[ProvisionedDevice]:
    get_or_404(session, Account, account_id)
    stmt = (select(Device).where(Device.account_id == account_id).order_by(col(Device.id))
            .offset(offset).limit(limit))
    devices = list(session.exec(stmt))
    lines = device_lines(session, [d.id for d in devices if d.id is not None])
    return [ProvisionedDevice(d, lines[d.id]) for d in devices if d.id is not None]


__all__ = ["R12_MESSAGE", "TRANSITIONS", "ProvisionedDevice", "activate_device",
           "bind_location", "create_device", "device_lines", "get_device", "list_devices",
           "rotate_line_password"]

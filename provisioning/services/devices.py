"""Devices, their SIP lines, and the lifecycle new → located → active →
suspended → retired (R12, R14), plus line reassignment (R2).

Lifecycle as an explicit table (h11 style): `(state, action) → new state`.
A missing entry is a 409. Activation additionally needs a bound location when
the account's plan requires one (R12): refused with the same words the
registrar uses in its 403 reason phrase.

Every device is checked against its hardware profile (`provisioning.validation`)
on creation and on every change; problems come back as 422 with field, rule
and limit, warnings ride along in the response and the audit record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from hardware_profiles.catalog import HardwareProfile
from provisioning import audit
from provisioning.credentials import (
    generate_password,
    generate_sip_username,
    ha1_digests,
    provisioning_ha1,
)
from provisioning.errors import Conflict, Findings, Invalid, Issue
from provisioning.events import Change
from provisioning.models import Account, Device, Line, User
from provisioning.schemas import DeviceCreate, DeviceUpdate, LineSpec
from provisioning.services.device_e911 import clear_stale
from provisioning.services.env import ServiceEnv, get_or_404
from provisioning.services.locations import location_for_binding
from provisioning.services.notices import record_activation_notice
from provisioning.validation import LinePlan, assign_ports, check_device, resolve_profile

R12_MESSAGE = "Device not activated: emergency location required (R12)"

TRANSITIONS: dict[tuple[str, str], str] = {
    ("new", "bind_location"): "located",
    ("located", "bind_location"): "located",
    ("active", "bind_location"): "active",  # a move (R13): stays active with the new location
    ("suspended", "bind_location"): "suspended",
    ("new", "activate"): "active",  # only where the plan needs no location (R12 guard below)
    ("located", "activate"): "active",
    ("active", "activate"): "active",  # idempotent
    ("new", "suspend"): "suspended",
    ("located", "suspend"): "suspended",
    ("active", "suspend"): "suspended",
    ("suspended", "suspend"): "suspended",  # idempotent
    ("suspended", "resume"): "previous",  # active if it ever was, else located/new
    ("new", "retire"): "retired",
    ("located", "retire"): "retired",
    ("active", "retire"): "retired",
    ("suspended", "retire"): "retired",
}

_USERNAME_ATTEMPTS = 20


@dataclass
class ProvisionedDevice:
    """A device with its lines; `passwords` (line id → clear password) is filled
    only right after creation or rotation and never stored in clear."""

    device: Device
    lines: list[Line]
    passwords: dict[int, str] = field(default_factory=dict)
    warnings: list[Issue] = field(default_factory=list)


def transition(device: Device, action: str) -> str:
    target = TRANSITIONS.get((device.state, action))
    if target is None:
        raise Conflict(f"device {device.id} is {device.state}; cannot {action.replace('_', ' ')}")
    return target


def unique_username(session: Session, extension: str, taken: set[str]) -> str:
    for _ in range(_USERNAME_ATTEMPTS):
        candidate = generate_sip_username(extension)
        if candidate in taken:
            continue
        if session.exec(select(Line.id).where(Line.sip_username == candidate)).first() is None:
            taken.add(candidate)
            return candidate
    raise Conflict("could not generate a unique sip_username, retry")


def set_password(env: ServiceEnv, line: Line, password: str) -> None:
    """HA1 for both digest algorithms, and the sealed password for phone configs."""
    ha1 = ha1_digests(line.sip_username, env.sip_domain, password)
    line.realm, line.ha1_md5, line.ha1_sha256 = env.sip_domain, ha1.md5, ha1.sha256
    line.password_sealed = env.secrets.seal(password) if env.secrets is not None else None
    line.password_set_at = env.now()


def check_line_users(session: Session, account_id: int, specs: Sequence[LineSpec],
                     findings: Findings) -> dict[int, User]:
    user_ids = [spec.user_id for spec in specs]
    users = {u.id: u for u in session.exec(select(User).where(col(User.id).in_(user_ids)))}
    seen: set[int] = set()
    for i, uid in enumerate(user_ids):
        user = users.get(uid)
        if user is None or user.account_id != account_id:
            findings.error(("lines", i, "user_id"), "user.account", f"user {uid} not found in account {account_id}")
        elif uid in seen:
            findings.error(("lines", i, "user_id"), "user.unique_on_device",
                           f"user {uid} already has a line on this device")
        seen.add(uid)
    return {k: v for k, v in users.items() if k is not None}


def mac_taken(session: Session, mac: str | None, *, except_device: int | None = None) -> bool:
    if mac is None:
        return False
    found = session.exec(select(Device.id).where(Device.mac == mac)).first()
    return found is not None and found != except_device


def validate_new_device(env: ServiceEnv, account_id: int,
                        data: DeviceCreate) -> tuple[HardwareProfile | None, list[LinePlan], dict[int, User], Findings]:
    """All checks of a device creation; raises Invalid with every error found."""
    s = env.session
    findings = Findings()
    profile = resolve_profile(env.catalog, data.hardware_profile, findings)
    plans = assign_ports(profile, [LinePlan(spec.port, spec.purpose) for spec in data.lines])
    if profile is not None or data.hardware_profile is None:
        check_device(env.catalog, profile, mac=data.mac, lines=plans, codecs=data.codecs or (),
                     transport=data.transport, findings=findings)
    if mac_taken(s, data.mac):
        findings.error(("mac",), "mac.unique", f"a device with MAC {data.mac} already exists (MACs are unique platform-wide)")
    users = check_line_users(s, account_id, data.lines, findings)
    findings.raise_errors()
    return profile, plans, users, findings


def create_device(env: ServiceEnv, account_id: int, data: DeviceCreate) -> ProvisionedDevice:
    s = env.session
    get_or_404(s, Account, account_id)
    profile, plans, users, findings = validate_new_device(env, account_id, data)
    now = env.now()
    device = Device(account_id=account_id, hardware_profile=profile.id if profile else None,
                    name=data.name, mac=data.mac, serial=data.serial,
                    kind=profile.kind if profile else "unknown", state="new",
                    transport=data.transport or (profile.transports[0] if profile and profile.transports else "udp"),
                    codecs=list(data.codecs or ()), ua_policy=data.ua_policy,
                    prov_ha1=provisioning_ha1(data.mac, data.provisioning_password), created_at=now)
    s.add(device)
    s.flush()
    assert device.id is not None
    taken: set[str] = set()
    lines: list[Line] = []
    passwords: list[str] = []
    for index, (spec, plan) in enumerate(zip(data.lines, plans, strict=True), start=1):
        line = Line(device_id=device.id, user_id=spec.user_id, index=index,
                    sip_username=unique_username(s, users[spec.user_id].extension, taken),
                    realm=env.sip_domain, ha1_md5="", ha1_sha256="", port=plan.port,
                    purpose=plan.purpose, created_at=now, password_set_at=now)
        password = generate_password()
        set_password(env, line, password)
        s.add(line)
        lines.append(line)
        passwords.append(password)
    s.flush()
    audit.record(s, at=now, actor=env.actor, action="device.created", entity="device",
                 entity_id=device.id, account_id=account_id,
                 detail={"hardware_profile": device.hardware_profile, "name": data.name, "mac": data.mac,
                         "serial": data.serial, "lines": [_line_detail(ln) for ln in lines],
                         "warnings": [w.to_dict() for w in findings.warnings]})
    env.commit(Change("device.created", device.id, account_id))
    return ProvisionedDevice(device, lines,
                             {ln.id: pw for ln, pw in zip(lines, passwords, strict=True) if ln.id is not None},
                             findings.warnings)


def _line_detail(line: Line) -> dict[str, Any]:
    return {"index": line.index, "user_id": line.user_id, "sip_username": line.sip_username,
            "port": line.port, "purpose": line.purpose}


def update_device(env: ServiceEnv, device_id: int, data: DeviceUpdate) -> ProvisionedDevice:
    """Change model, MAC, codecs … and re-check the whole device against its profile."""
    s = env.session
    device = get_or_404(s, Device, device_id)
    if device.state == "retired":
        raise Conflict(f"device {device_id} is retired; cannot change it")
    changes = data.model_dump(exclude_unset=True)
    findings = Findings()
    profile_id = changes.get("hardware_profile", device.hardware_profile)
    if "hardware_profile" in changes and profile_id is None:
        findings.error(("hardware_profile",), "hardware_profile.known", "a known model cannot be unset")
    profile = resolve_profile(env.catalog, profile_id, findings)
    mac = changes.get("mac", device.mac)
    lines = device_lines(s, [device_id])[device_id]
    codecs = changes.get("codecs", device.codecs) or []
    transport = changes.get("transport", device.transport)
    if profile is not None or profile_id is None:
        check_device(env.catalog, profile, mac=mac, lines=[LinePlan(ln.port, ln.purpose) for ln in lines],
                     codecs=codecs, transport=transport, findings=findings)
    if ("mac" in changes and device.prov_ha1 is not None and mac != device.mac
            and changes.get("provisioning_password") is None):
        findings.error(("provisioning_password",), "provisioning_password.mac",
                       "the provisioning digest user is the MAC: give the password again with a new MAC")
    if "mac" in changes and mac_taken(s, mac, except_device=device_id):
        findings.error(("mac",), "mac.unique", f"a device with MAC {mac} already exists (MACs are unique platform-wide)")
    findings.raise_errors()
    before = {k: getattr(device, k) for k in changes if k != "provisioning_password"}
    for key, value in changes.items():
        if key == "provisioning_password":
            device.prov_ha1 = provisioning_ha1(mac, value)
        elif key == "codecs":
            device.codecs = list(value or [])
        else:
            setattr(device, key, value)
    if profile is not None:
        device.kind = profile.kind
        if profile.kind == "ata" and any(ln.port is None for ln in lines):
            for ln, plan in zip(lines, assign_ports(profile, [LinePlan(ln.port, ln.purpose) for ln in lines]),
                                strict=True):
                ln.port = plan.port
                s.add(ln)
    s.add(device)
    audit.record(s, at=env.now(), actor=env.actor, action="device.updated", entity="device",
                 entity_id=device_id, account_id=device.account_id,
                 detail={"before": before, "after": {k: v for k, v in changes.items()},
                         "warnings": [w.to_dict() for w in findings.warnings]})
    env.commit(Change("device.updated", device_id, device.account_id))
    return ProvisionedDevice(device, lines, warnings=findings.warnings)


def bind_location(env: ServiceEnv, device_id: int, location_id: int) -> Device:
    """Bind (or re-bind, R13) the device's registered location.

    The location is validated again (a dispatchable location, issue #4), and
    binding answers a move: the device's `location_stale` flag clears and its
    open location prompts resolve as `updated`.
    """
    s = env.session
    device = get_or_404(s, Device, device_id)
    transition(device, "bind_location")  # a retired device: 409 before anything else
    location_for_binding(env, device.account_id, location_id)
    previous_state, previous_location = device.state, device.location_id
    device.state = transition(device, "bind_location")
    device.location_id = location_id
    device.located_at = env.now()
    s.add(device)
    moved = clear_stale(env, device, resolution="updated", location_id=location_id,
                        reset_fingerprint=True)
    audit.record(s, at=env.now(), actor=env.actor, action="device.located", entity="device",
                 entity_id=device_id, account_id=device.account_id,
                 detail={"location_id": location_id, "previous_location_id": previous_location,
                         "from_state": previous_state, "to_state": device.state, **moved})
    env.commit(Change("device.located", device_id, device.account_id))
    return device


def _location_required(env: ServiceEnv, device: Device) -> bool:
    account = env.session.get(Account, device.account_id)
    plan = env.plans.get(account.plan) if account is not None else None
    return True if plan is None else plan.location_required


def activate_device(env: ServiceEnv, device_id: int) -> Device:
    s = env.session
    device = get_or_404(s, Device, device_id)
    if device.hardware_profile is None and device.state in ("new", "located"):
        raise Conflict(f"device {device_id} has no model yet: it is learnt from the first configuration fetch",
                       field="hardware_profile")
    if device.location_id is None and device.state in ("new", "located") and _location_required(env, device):
        raise Conflict(R12_MESSAGE, rule_id="R12")
    return _move(env, device, "activate", "device.activated", activated=True)


def suspend_device(env: ServiceEnv, device_id: int) -> Device:
    """Suspended devices keep their lines but may not register or call (the
    gateway drops their bindings on the change)."""
    return _move(env, get_or_404(env.session, Device, device_id), "suspend", "device.suspended")


def resume_device(env: ServiceEnv, device_id: int) -> Device:
    return _move(env, get_or_404(env.session, Device, device_id), "resume", "device.resumed")


def retire_device(env: ServiceEnv, device_id: int) -> Device:
    """Final. The MAC is released for reuse (kept as `retired_mac`); lines stay
    for history but can never register again."""
    return _move(env, get_or_404(env.session, Device, device_id), "retire", "device.retired")


def _move(env: ServiceEnv, device: Device, action: str, kind: str, *, activated: bool = False) -> Device:
    previous = device.state
    target = transition(device, action)
    if target == "previous":
        target = "active" if device.activated_at is not None else ("located" if device.location_id else "new")
    if target == previous:
        return device  # idempotent: nothing changed, nothing to audit
    now = env.now()
    device.state = target
    detail: dict[str, Any] = {"from_state": previous, "to_state": target}
    if activated:
        device.activated_at = now
        detail["location_id"] = device.location_id
    if target == "suspended":
        device.suspended_at = now
    if target == "retired":
        device.retired_at = now
        device.retired_mac, device.mac = device.mac, None
        detail["released_mac"] = device.retired_mac
    env.session.add(device)
    assert device.id is not None
    audit.record(env.session, at=now, actor=env.actor, action=kind, entity="device",
                 entity_id=device.id, account_id=device.account_id, detail=detail)
    if activated:
        record_activation_notice(env, device)  # R15: forwarding waits for its acknowledgement
    env.commit(Change(kind, device.id, device.account_id))
    return device


def rotate_line_password(env: ServiceEnv, line_id: int) -> tuple[Line, str]:
    """New password for one line (realm = the current SIP domain); the old one
    stops working as soon as the directory applies the change."""
    s = env.session
    line = get_or_404(s, Line, line_id)
    device = get_or_404(s, Device, line.device_id)
    password = generate_password()
    set_password(env, line, password)
    line.credential_generation += 1
    s.add(line)
    audit.record(s, at=env.now(), actor=env.actor, action="line.password_rotated", entity="line",
                 entity_id=line_id, account_id=device.account_id,
                 detail={"sip_username": line.sip_username, "realm": line.realm,
                         "credential_generation": line.credential_generation})
    env.commit(Change("line.password_rotated", line_id, device.account_id))
    return line, password


def reassign_line(env: ServiceEnv, line_id: int, user_id: int) -> tuple[Line, str]:
    """R2: give a line to another named user of the account. The previous
    holder loses access at once: the line gets a new SIP username and password
    (its old credentials stop working) and a new credential generation (the
    gateway drops bindings made under the old one)."""
    s = env.session
    line = get_or_404(s, Line, line_id)
    device = get_or_404(s, Device, line.device_id)
    if device.state == "retired":
        raise Conflict(f"device {device.id} is retired; its lines cannot be reassigned")
    user = s.get(User, user_id)
    if user is None or user.account_id != device.account_id:
        raise Invalid("user_id", f"user {user_id} not found in account {device.account_id}", rule="user.account")
    if user_id == line.user_id:
        raise Invalid("user_id", f"line {line_id} already belongs to user {user_id}", rule="user.same")
    other = s.exec(select(Line.id).where(Line.device_id == device.id, Line.user_id == user_id)).first()
    if other is not None:
        raise Invalid("user_id", f"user {user_id} already has a line on device {device.id}",
                      rule="user.unique_on_device")
    previous_user, previous_username = line.user_id, line.sip_username
    line.user_id = user_id
    line.sip_username = unique_username(s, user.extension, set())
    password = generate_password()
    set_password(env, line, password)
    line.credential_generation += 1
    s.add(line)
    audit.record(s, at=env.now(), actor=env.actor, action="line.reassigned", entity="line",
                 entity_id=line_id, account_id=device.account_id,
                 detail={"from_user_id": previous_user, "to_user_id": user_id,
                         "previous_sip_username": previous_username, "sip_username": line.sip_username,
                         "credential_generation": line.credential_generation, "rule_id": "R2"})
    env.commit(Change("line.reassigned", line_id, device.account_id))
    return line, password


def revoke_lines(env: ServiceEnv, lines: Sequence[Line]) -> list[Change]:
    """New secret password nobody receives, and a new generation (R2): used when a
    licence leaves its holder. The caller commits and publishes the changes."""
    changes = []
    for line in lines:
        set_password(env, line, generate_password())
        line.credential_generation += 1
        env.session.add(line)
        assert line.id is not None
        device = env.session.get(Device, line.device_id)
        account_id = device.account_id if device is not None else 0
        changes.append(Change("line.credentials_revoked", line.id, account_id))
    return changes


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


__all__ = ["R12_MESSAGE", "TRANSITIONS", "ProvisionedDevice", "activate_device", "bind_location",
           "create_device", "device_lines", "get_device", "list_devices", "reassign_line",
           "resume_device", "retire_device", "revoke_lines", "rotate_line_password", "suspend_device",
           "update_device"]

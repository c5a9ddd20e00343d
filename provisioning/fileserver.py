"""The phone-facing file server's decisions (HTTP-free; the route is thin).

For `GET /provision/<file>`:
1. A common file (no MAC: `y000000000096.cfg`, `000000000000.cfg`,
   `spa112.cfg`) is rendered for its model; a server that demanded a MAC from
   the User-Agent for these would break real phones (fusionpbx#2563).
2. Otherwise the MAC comes from the file name; an unknown MAC is 404 and
   logged (bounded in-memory log + the Python logger), never created (Wazo
   provd's secure mode: crafted requests must not fill the database).
3. Retired → 404, suspended → 403. A device with a provisioning password
   needs HTTP digest (user = MAC).
4. The User-Agent is matched against the device's profile. Policy per
   device: `enforce` refuses another model or another MAC (403, audited),
   `flag` serves and records the mismatch, `off` does not look. A device
   created without a model takes it from its first fetch's User-Agent.
5. The last fetch (time, file, UA, IP, firmware) is stored on the device.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import select

from hardware_profiles.catalog import HardwareProfile, UaMatch
from provisioning import audit
from provisioning.configs import DeviceConfig, LineConfig, RenderError, content_type, render
from provisioning.errors import Findings
from provisioning.events import Change
from provisioning.httpdigest import DigestGuard
from provisioning.models import Device, Line, User
from provisioning.secrets import SealError
from provisioning.services.devices import device_lines
from provisioning.services.env import ServiceEnv
from provisioning.validation import CALLING_KINDS, LinePlan, assign_ports, check_device

log = logging.getLogger("voiplab.provision")

_MAC_IN_NAME = re.compile(r"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,120}$")


@dataclass(frozen=True, slots=True)
class FetchRequest:
    file: str
    user_agent: str
    ip: str
    authorization: str | None
    uri: str  # the request path, for digest


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnknownFetch:
    at: datetime
    file: str
    ip: str
    user_agent: str
    reason: str


class ProvisionLog:
    """The most recent refused fetches (unknown MAC, retired …), bounded so that
    a scan cannot grow memory; thread-safe (API worker threads)."""

    def __init__(self, size: int = 500) -> None:
        self._lock = threading.Lock()
        self._items: deque[UnknownFetch] = deque(maxlen=size)
        self.total = 0

    def add(self, item: UnknownFetch) -> None:
        with self._lock:
            self._items.append(item)
            self.total += 1
        log.warning("provisioning fetch refused: %s from %s (%s): %s", item.file, item.ip,
                    item.user_agent, item.reason)

    def recent(self) -> list[UnknownFetch]:
        with self._lock:
            return list(self._items)


@dataclass(frozen=True)
class FileServer:
    """Long-lived settings of the file server, built once by the composition root."""

    sip_server: str
    sip_ports: Mapping[str, int]
    guard: DigestGuard = field(default_factory=DigestGuard)
    log: ProvisionLog = field(default_factory=ProvisionLog)

    def serve(self, env: ServiceEnv, req: FetchRequest, base_url: str) -> FetchResult:
        name = req.file
        if not _SAFE_NAME.match(name):
            return self._refuse(env, req, 404, "not a provisioning file name")
        common = env.catalog.common_files().get(name.lower())
        if common:
            profile = next((p for p in common if p.match_ua(req.user_agent)), common[0])
            body = render(profile, name, None, base_url)
            return FetchResult(200, body, content_type(profile), _etag(body))
        device = self._device_for(env, name.lower())
        if device is None:
            return self._refuse(env, req, 404, "unknown device (no device has this MAC)")
        if device.state == "retired":
            return self._refuse(env, req, 404, f"device {device.id} is retired")
        if device.state == "suspended":
            return self._refuse(env, req, 403, f"device {device.id} is suspended")
        assert device.mac is not None
        if device.prov_ha1 is not None and not self.guard.check(
                req.authorization, method="GET", uri=req.uri, username=device.mac, ha1=device.prov_ha1,
                now=env.now().timestamp()):
            return FetchResult(401, b"digest authentication required\n",
                               headers={"WWW-Authenticate": self.guard.challenge(env.now().timestamp())})
        found, refusal = self._profile(env, device, req)
        if refusal is not None:
            return refusal
        assert found is not None
        profile = found
        if name.lower() not in (f.lower() for f in profile.file_names(device.mac)):
            return self._refuse(env, req, 404, f"{name} is not a file of a {profile.model}")
        try:
            config = self._config(env, device, base_url)
            body = render(profile, name, config, base_url)
        except (SealError, RenderError) as exc:
            return FetchResult(409, f"cannot render {name}: {exc}\n".encode())
        self._record_fetch(env, device, req, profile)
        return FetchResult(200, body, content_type(profile), _etag(body))

    # --- steps ------------------------------------------------------------------------------

    @staticmethod
    def _device_for(env: ServiceEnv, name: str) -> Device | None:
        for mac in _MAC_IN_NAME.findall(name):
            device = env.session.exec(select(Device).where(Device.mac == mac)).first()
            if device is not None:
                return device
        return None

    def _refuse(self, env: ServiceEnv, req: FetchRequest, status: int, reason: str) -> FetchResult:
        self.log.add(UnknownFetch(env.now(), req.file, req.ip, req.user_agent, reason))
        return FetchResult(status, f"{reason}\n".encode())

    def _profile(self, env: ServiceEnv, device: Device,
                 req: FetchRequest) -> tuple[HardwareProfile | None, FetchResult | None]:
        if device.hardware_profile is None:
            return self._learn_model(env, device, req)
        profile = env.catalog.get(device.hardware_profile)
        if profile is None:
            return None, FetchResult(409, f"hardware profile {device.hardware_profile} is not in the catalog\n".encode())
        if device.ua_policy == "off":
            return profile, None
        reason, hard = ua_problem(env, profile, device, req.user_agent)
        if reason is not None and hard and device.ua_policy == "enforce":
            assert device.id is not None
            audit.record(env.session, at=env.now(), actor="provisioning", action="device.fetch_refused",
                         entity="device", entity_id=device.id, account_id=device.account_id,
                         detail={"file": req.file, "user_agent": req.user_agent, "ip": req.ip, "reason": reason})
            env.session.commit()
            return None, self._refuse(env, req, 403, reason)
        if reason != device.ua_mismatch:
            assert device.id is not None
            audit.record(env.session, at=env.now(), actor="provisioning", action="device.ua_flagged"
                         if reason else "device.ua_cleared", entity="device", entity_id=device.id,
                         account_id=device.account_id,
                         detail={"user_agent": req.user_agent, "ip": req.ip, "reason": reason})
            device.ua_mismatch = reason
        return profile, None

    def _learn_model(self, env: ServiceEnv, device: Device,
                     req: FetchRequest) -> tuple[HardwareProfile | None, FetchResult | None]:
        """GoTo: "model optional … it will automatically populate when you provision
        the device" (notes §5). Exactly one profile must match the User-Agent and
        the device's lines must fit it."""
        matches = [m for m in env.catalog.match_ua(req.user_agent)
                   if (p := env.catalog.get(m.profile_id)) is not None and p.kind in CALLING_KINDS]
        if len(matches) != 1:
            return None, self._refuse(env, req, 404, f"device {device.id} has no model and the User-Agent "
                                      f"names {'none' if not matches else 'several'}")
        profile = env.catalog.get(matches[0].profile_id)
        assert profile is not None and device.id is not None and device.mac is not None
        if matches[0].mac is not None and matches[0].mac != device.mac:
            return None, self._refuse(env, req, 403, f"User-Agent MAC {matches[0].mac} is not {device.mac}")
        lines = device_lines(env.session, [device.id])[device.id]
        plans = assign_ports(profile, [LinePlan(ln.port, ln.purpose) for ln in lines])
        findings = check_device(env.catalog, profile, mac=device.mac, lines=plans,
                                codecs=device.codecs, findings=Findings())
        errors = [i.to_dict() for i in findings.issues if i.severity == "error"]
        if errors:
            audit.record(env.session, at=env.now(), actor="provisioning", action="device.model_rejected",
                         entity="device", entity_id=device.id, account_id=device.account_id,
                         detail={"user_agent": req.user_agent, "profile": profile.id, "errors": errors})
            env.session.commit()
            return None, self._refuse(env, req, 409, f"device {device.id} does not fit {profile.id}: "
                                      f"{errors[0]['message']}")
        for ln, plan in zip(lines, plans, strict=True):
            ln.port = plan.port
            env.session.add(ln)
        device.hardware_profile, device.kind = profile.id, profile.kind
        if device.transport not in profile.transports and profile.transports:
            device.transport = profile.transports[0]
        audit.record(env.session, at=env.now(), actor="provisioning", action="device.model_learned",
                     entity="device", entity_id=device.id, account_id=device.account_id,
                     detail={"hardware_profile": profile.id, "user_agent": req.user_agent, "ip": req.ip})
        env.commit(Change("device.updated", device.id, device.account_id))
        return profile, None

    def _config(self, env: ServiceEnv, device: Device, base_url: str) -> DeviceConfig:
        assert device.id is not None and device.mac is not None
        if env.secrets is None:
            raise SealError("no secret key configured: SIP passwords cannot be put into configs")
        rows = env.session.exec(select(Line, User).join(User, Line.user_id == User.id)  # type: ignore[arg-type]
                                .where(Line.device_id == device.id).order_by(Line.index)).all()  # type: ignore[arg-type]
        lines = []
        for line, user in rows:
            if line.password_sealed is None:
                raise SealError(f"line {line.index} has no recoverable password: rotate it")
            lines.append(LineConfig(index=line.index, user=line.sip_username, auth_user=line.sip_username,
                                    password=env.secrets.open(line.password_sealed),
                                    display_name=user.display_name, label=user.extension, port=line.port,
                                    purpose=line.purpose))
        model = env.catalog.get(device.hardware_profile or "")
        codecs = tuple(device.codecs) or (model.codecs if model else ())
        return DeviceConfig(mac=device.mac, sip_server=self.sip_server,
                            sip_port=self.sip_ports.get(device.transport, 5060), transport=device.transport,
                            codecs=codecs, lines=tuple(lines), provisioning_url=base_url.rstrip("/"))

    @staticmethod
    def _record_fetch(env: ServiceEnv, device: Device, req: FetchRequest, profile: HardwareProfile) -> None:
        match = profile.match_ua(req.user_agent)
        device.last_fetch_at = env.now()
        device.last_fetch_file = req.file[:120]
        device.last_fetch_ua = req.user_agent[:255]
        device.last_fetch_ip = req.ip[:64]
        device.last_fetch_firmware = match.firmware[:64] if match and match.firmware else None
        env.session.add(device)
        env.commit()


def ua_problem(env: ServiceEnv, profile: HardwareProfile, device: Device,
               user_agent: str) -> tuple[str | None, bool]:
    """Why this User-Agent does not fit the device (None: it fits), and whether the
    problem is hard (another model or MAC: `enforce` refuses) or soft (unexpected
    firmware: only ever flagged)."""
    match: UaMatch | None = profile.match_ua(user_agent)
    if match is None:
        others = [m.profile_id for m in env.catalog.match_ua(user_agent)]
        if others:
            other = env.catalog.get(others[0])
            assert other is not None
            return (f"User-Agent is a {other.vendor} {other.model}, the device is a "
                    f"{profile.vendor} {profile.model}"), True
        return f"User-Agent {user_agent[:80]!r} is not a {profile.vendor} {profile.model}", True
    if match.mac is not None and match.mac != device.mac:
        return f"User-Agent MAC {match.mac} is not this device's {device.mac}", True
    if match.firmware is not None and profile.firmware_ok(match.firmware) is False:
        return f"firmware {match.firmware} outside the expected {profile.firmware_pattern}", False
    return None, False


def _etag(body: bytes) -> dict[str, str]:
    """The content hash doubles as the config version (notes §4 #3)."""
    return {"ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"'}


def unknown_fetches_json(server: FileServer) -> list[dict[str, Any]]:
    return [{"at": u.at.isoformat(), "file": u.file, "ip": u.ip, "user_agent": u.user_agent, "reason": u.reason}
            for u in server.log.recent()]

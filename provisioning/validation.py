"""A device checked against its hardware profile (pure: no database).

Every finding names the field, a rule and the limit, so a client can act on
it without parsing prose. A check built on a profile fact that is only
*unverified* (no source, see hardware_profiles.catalog) is a warning, not an
error: we do not refuse a real phone on a guess. Rules:

| rule | field | limit |
|---|---|---|
| `hardware_profile.known` | hardware_profile | — |
| `hardware_profile.kind` | hardware_profile | kinds that carry lines |
| `mac.required` / `mac.forbidden` | mac | — |
| `mac.oui_vendor` (error) / `mac.oui_unknown` (warning) | mac | the profile's OUIs |
| `lines.max` | lines | SIP lines of the model |
| `port.not_ata` | lines.N.port | — |
| `port.fxs` (port ≤ FXS ports) | lines.N.port | FXS ports |
| `port.fxo_no_user_line` | lines.N.port | FXS ports |
| `port.unique` | lines.N.port | — |
| `fax.t38` (a fax port needs T.38) | lines.N.purpose | — |
| `codecs.supported` (codecs ⊆ supported) | codecs.N | supported codecs |
| `transport.supported` | transport | supported transports |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hardware_profiles.catalog import HardwareCatalog, HardwareProfile
from provisioning.errors import Findings

CALLING_KINDS = ("desk_phone", "dect", "conference", "ata", "softphone")


@dataclass(frozen=True, slots=True)
class LinePlan:
    """A line as requested: the FXS port (ATAs) and its purpose."""

    port: int | None = None
    purpose: str = "voice"


def resolve_profile(catalog: HardwareCatalog, profile_id: str | None,
                    findings: Findings) -> HardwareProfile | None:
    if profile_id is None:
        return None
    profile = catalog.get(profile_id)
    if profile is None:
        known = ", ".join(p.id for p in catalog if p.kind in CALLING_KINDS)
        findings.error(("hardware_profile",), "hardware_profile.known",
                       f"unknown hardware profile {profile_id!r}; known: {known}")
        return None
    if profile.kind not in CALLING_KINDS:
        findings.error(("hardware_profile",), "hardware_profile.kind",
                       f"{profile.id} is a {profile.kind}: add it to a room kit, not as a device",
                       list(CALLING_KINDS))
        return None
    return profile


def assign_ports(profile: HardwareProfile | None, lines: Sequence[LinePlan]) -> list[LinePlan]:
    """ATA lines without a port take the lowest free FXS port, in order; when the
    FXS ports run out they take the next port numbers (FXO or beyond), which
    `check_device` then refuses with the reason."""
    if profile is None or profile.kind != "ata":
        return list(lines)
    taken = {ln.port for ln in lines if ln.port is not None}
    candidates = (p for p in range(1, 1000) if p not in taken)
    return [ln if ln.port is not None else LinePlan(port=next(candidates), purpose=ln.purpose)
            for ln in lines]


def check_device(catalog: HardwareCatalog, profile: HardwareProfile | None, *, mac: str | None,
                 lines: Sequence[LinePlan], codecs: Sequence[str] = (),
                 transport: str | None = None, findings: Findings | None = None) -> Findings:
    """Every problem of a device of model `profile` (None: model still unknown)."""
    f = findings if findings is not None else Findings()
    if profile is None:
        if mac is None:
            f.error(("mac",), "mac.required",
                    "a device without a model needs its MAC: the model is learnt from its first fetch")
        return f
    _check_mac(catalog, profile, mac, f)
    if len(lines) > profile.sip_lines:
        f.check(("lines",), "lines.max",
                f"{profile.vendor} {profile.model} has {profile.sip_lines} SIP line(s), got {len(lines)}",
                profile.sip_lines, hard=profile.is_verified("sip_lines"))
    _check_ports(profile, lines, f)
    supported = set(profile.codecs)
    for i, codec in enumerate(codecs):
        if codec not in supported:
            f.check(("codecs", i), "codecs.supported",
                    f"{profile.model} does not support codec {codec!r}", list(profile.codecs),
                    hard=profile.is_verified("codecs"))
    if transport is not None and transport not in profile.transports:
        f.check(("transport",), "transport.supported",
                f"{profile.model} does not support SIP over {transport.upper()}", list(profile.transports),
                hard=profile.is_verified("transports"))
    return f


def _check_mac(catalog: HardwareCatalog, profile: HardwareProfile, mac: str | None, f: Findings) -> None:
    if mac is None:
        if profile.mac_policy == "required":
            f.error(("mac",), "mac.required", f"{profile.id} needs a MAC address")
        return
    if profile.mac_policy == "forbidden":
        f.error(("mac",), "mac.forbidden", f"{profile.id} has no MAC address; leave mac out")
        return
    oui = mac[:6]
    if oui in profile.ouis:
        return
    owner = catalog.vendor_of_oui(oui)
    pretty = ":".join(oui[i:i + 2] for i in (0, 2, 4)).upper()
    if owner is not None and owner != profile.vendor:
        f.error(("mac",), "mac.oui_vendor",
                f"MAC prefix {pretty} belongs to {owner}, not {profile.vendor}", list(profile.ouis))
    else:
        f.warn(("mac",), "mac.oui_unknown",
               f"MAC prefix {pretty} is not a known {profile.vendor} OUI", list(profile.ouis))


def _check_ports(profile: HardwareProfile, lines: Sequence[LinePlan], f: Findings) -> None:
    seen: set[int] = set()
    hard_ports = profile.is_verified("fxs_ports")
    for i, ln in enumerate(lines):
        if ln.purpose == "fax" and not profile.t38:
            f.check(("lines", i, "purpose"), "fax.t38",
                    f"a fax line needs T.38 and {profile.model} has none", None,
                    hard=profile.is_verified("t38") or profile.kind != "ata")
        if profile.kind != "ata":
            if ln.port is not None:
                f.error(("lines", i, "port"), "port.not_ata",
                        f"{profile.model} is not an ATA: its lines have no port")
            continue
        port = ln.port
        if port is None:
            continue
        kind = profile.port_kind(port)
        if kind is None:
            f.check(("lines", i, "port"), "port.fxs",
                    f"{profile.model} has FXS ports 1..{profile.fxs_ports}, not {port}",
                    profile.fxs_ports, hard=hard_ports)
        elif kind == "fxo":
            f.check(("lines", i, "port"), "port.fxo_no_user_line",
                    f"port {port} of {profile.model} is an FXO (PSTN) port: it carries no user line",
                    profile.fxs_ports, hard=profile.is_verified("fxo_ports"))
        if port in seen:
            f.error(("lines", i, "port"), "port.unique", f"port {port} already has a line")
        seen.add(port)

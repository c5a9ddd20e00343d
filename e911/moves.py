"""Move detection for rule R13: did a device register from somewhere else than last time?

Why pure and tiny: the registrar sees every REGISTER on the hot path and
only needs a cheap comparison of two fingerprints; what to do about a move
(flag `location_stale`, prompt a softphone user, audit it) is decided by
provisioning from the returned `MoveCheck`.

A fingerprint is the source subnet (IPv4 /24, IPv6 /64 by default) plus the
host in the Contact (a phone behind another NAT, or a laptop on another
LAN, changes one of them). A *fixed* device (desk phone, DECT, ATA, conference phone; hardware_profiles KINDS) that
moved is flagged stale; a *nomadic* one (softphone) is flagged and its user
prompted to confirm or update the location (notes §2.3, 47 CFR 9.11).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

#: device kinds that are nomadic (readily moved by the user); everything else is fixed
NOMADIC_KINDS = frozenset({"softphone"})


@dataclass(frozen=True, slots=True)
class NetworkFingerprint:
    subnet: str  # "192.0.2.0/24", "2001:db8::/64", or the host itself when not an IP literal
    contact_host: str  # lower-case host from the Contact URI (brackets stripped)

    def as_dict(self) -> dict[str, str]:
        return {"subnet": self.subnet, "contact_host": self.contact_host}


@dataclass(frozen=True, slots=True)
class MoveCheck:
    moved: bool
    stale: bool  # set the device's location_stale flag
    prompt: bool  # ask the user to confirm or update the location (nomadic devices)
    reason: str  # what changed, for the audit log ("" when nothing moved)


def fingerprint(source_ip: str, contact_host: str, *, v4_prefix: int = 24, v6_prefix: int = 64) -> NetworkFingerprint:
    """The network a REGISTER came from: its source subnet and its Contact host."""
    host = source_ip.strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        subnet = host.lower()
    else:
        prefix = v4_prefix if address.version == 4 else v6_prefix
        subnet = str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    return NetworkFingerprint(subnet, contact_host.strip("[]").lower())


def check_move(last: NetworkFingerprint | None, current: NetworkFingerprint, device_kind: str) -> MoveCheck:
    """Compare this REGISTER's fingerprint with the last one recorded for the device.

    No previous fingerprint (first registration) is not a move.
    """
    if last is None or last == current:
        return MoveCheck(False, False, False, "")
    changes = []
    if last.subnet != current.subnet:
        changes.append(f"source network {last.subnet} → {current.subnet}")
    if last.contact_host != current.contact_host:
        changes.append(f"Contact host {last.contact_host} → {current.contact_host}")
    nomadic = device_kind in NOMADIC_KINDS
    who = "nomadic device: user prompted to confirm or update its location" if nomadic else \
        "fixed device registered from a different network: location flagged stale"
    return MoveCheck(True, True, nomadic, f"{'; '.join(changes)} ({who}, R13)")

"""Emergency calls in the router: classify first, then decide where the call goes (R10–R16).

Why a module of pure helpers the proxy calls *before* any other policy: an
emergency call must bypass every non-safety limit (concurrency, duration,
fair use, fraud, blocked destinations). Running this first, and never
asking the policy about an emergency call, makes that true by construction.
Only two rules may stop such a call, and each refusal names its rule:

- **R10** the plan has no dial tone / no emergency calling: refused, never
  silently routed elsewhere (403, reason naming R10).
- **R11** the service was deactivated (account suspended or deactivated,
  device suspended or retired) or the device's site has a simulated power or
  internet outage (or the customer's network blocks the platform): the call
  fails the way the rule says (403 for deactivation, 503 for outages).

Everything else connects:

- to the **PSAP** (service URN, PIDF-LO by value, callback in P-Asserted-
  Identity) when the device's location forwarding is on (R15: the customer
  was notified that the device is active) and its location is not stale;
- to the **national emergency call centre** without location (the caller
  states it aloud) when forwarding is not on yet, there is no registered
  location, or the location is stale and the account's policy says so (R13);
  the reason is returned for the call record.

933 / ``urn:service:test.sos`` test calls follow R10/R11 like real ones and
otherwise always go to the PSAP simulator's read-back service, with the
location only when it may be forwarded.

Inputs are plain dataclasses the proxy fills from the directory snapshot;
`attach_location` / `strip_location` edit the forwarded INVITE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from e911.civic import CivicAddress, profile_for
from e911.conveyance import (
    PIDF,
    callback_identity,
    find_sdp,
    geolocation_headers,
    location_body,
    new_content_id,
    parse_content_type,
)
from e911.dialplans import Classification, DialPlans, EmergencyKind, classify
from e911.pidf import build_pidf, device_uri
from gateway.sip.message import Request

#: account statuses that mean "service deactivated" (R11); any other status lets the call through
DEACTIVATED_ACCOUNT_STATUSES = frozenset({"suspended", "deactivated", "closed", "terminated", "cancelled"})
#: device states that mean the device's service was deactivated (R11)
DEACTIVATED_DEVICE_STATES = frozenset({"suspended", "retired", "deactivated"})
#: device states before activation (R12): no location forwarding yet, the call still connects
NOT_YET_ACTIVE_DEVICE_STATES = frozenset({"new", "located", "provisioning"})

OUTAGES = ("power", "internet", "network_blocked")
STALE_POLICIES = ("use_last", "national_centre")


# --- classification -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EmergencyClass:
    """An emergency (or test) call as the router sees it."""

    kind: EmergencyKind  # EMERGENCY or TEST, never NONE
    service_urn: str  # urn:service:sos[.x] or urn:service:test.sos[.x]
    dialled: str  # what the caller dialled ("911", "9911", "urn:service:sos" …)
    region: str  # the account region it was classified in
    legacy: bool  # True: a number was dialled (the gateway maps it to the URN)
    classification: Classification

    @property
    def is_test(self) -> bool:
        return self.kind is EmergencyKind.TEST


def classify_call(ruri_user: str, account_region: str, plans: DialPlans | None = None) -> EmergencyClass | None:
    """Emergency or test call per the region's dial plan, or None for an ordinary call.

    `ruri_user` is the Request-URI's user part (``911``) or the whole
    Request-URI (``sip:911@gw;user=phone``, ``urn:service:sos``).
    `plans` defaults to the packaged `e911/data/dialplans.toml`.
    """
    result = classify(ruri_user, account_region, plans)
    if result.kind is EmergencyKind.NONE or result.urn is None:
        return None
    return EmergencyClass(result.kind, result.urn, result.dialled, result.region, result.legacy, result)


# --- decision -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EmergencyContext:
    """What the decision needs about the caller; the proxy fills it from the directory snapshot.

    - `account_status`: `AccountEntry.status` ("active", "suspended", later
      "deactivated"…). Statuses in `DEACTIVATED_ACCOUNT_STATUSES` refuse (R11);
      any other value lets the call through (an unknown status must not block
      an emergency call).
    - `plan_emergency_calling`: the plan's flag; False for every service
      without dial tone (meetings, Grasshopper…): refuse (R10).
    - `device_state`: `LineEntry.device_state` ("new", "located", "active",
      "suspended", "retired"). Suspended/retired refuse (R11); not yet active
      connects to the national centre.
    - `location_known`: a validated dispatchable location is bound to the
      device (`LineEntry.location_id is not None` and the location is valid).
    - `location_forwarding`: R15 — automatic forwarding of location and
      callback is on for this device, i.e. the customer notice that the device
      is active was recorded (and acknowledged, if the account requires it).
    - `outage`: the simulated outage at the device's site right now: None,
      "power", "internet" or "network_blocked" (R11: the customer's own network
      blocks the platform).
    - `location_stale`: R13 — the device was flagged `location_stale` (a
      fixed device registered from another network, or a nomadic device whose
      user has not confirmed its location yet).
    - `stale_policy`: the account's policy for a stale device's emergency
      call: "use_last" (send the last registered location, with a warning) or
      "national_centre" (send no location; the centre asks for it).
    """

    account_status: str
    plan_emergency_calling: bool
    device_state: str
    location_known: bool
    location_forwarding: bool
    outage: str | None = None
    location_stale: bool = False
    stale_policy: str = "use_last"


class RouteKind(Enum):
    PSAP = "psap"
    NATIONAL_CENTRE = "national_centre"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class EmergencyRoute:
    """Where an emergency call goes, or how it is refused, and why (for the CDR and audit log).

    - `kind`: PSAP (with location when `with_location`), NATIONAL_CENTRE
      (never with location), or REFUSE (answer `status` `reason` upstream).
    - `code`: machine-readable cause: "forwarding_on", "stale_location_used",
      "not_notified", "no_location", "device_not_active", "stale_location",
      "test_call", "plan_without_emergency_calling", "account_deactivated",
      "device_deactivated", "site_power_outage", "site_internet_outage",
      "site_network_blocked".
    - `rule_id`: the rule behind the decision ("R10", "R11", "R13", "R15") or None.
    - `reason`: a human sentence naming the rule; for REFUSE it is the SIP
      reason phrase, for the others the reason recorded with the call.
    - `notify`: send the Kari's Law notification (real emergency calls that
      connect; not test calls, not refusals).
    """

    kind: RouteKind
    service_urn: str
    with_location: bool
    code: str
    reason: str
    rule_id: str | None = None
    status: int | None = None  # SIP status when refused
    warnings: tuple[str, ...] = field(default=())
    notify: bool = False

    @property
    def refused(self) -> bool:
        return self.kind is RouteKind.REFUSE

    def refusal_headers(self, host: str) -> list[tuple[str, str]]:
        """Headers for the refusal response: a Warning (RFC 3261 §20.43) repeating the reason."""
        if not self.refused:
            return []
        text = self.reason.replace("\\", "").replace('"', "'")
        return [("Warning", f'399 {host} "{text}"')]


def _refuse(call: EmergencyClass, status: int, code: str, reason: str, rule_id: str) -> EmergencyRoute:
    return EmergencyRoute(RouteKind.REFUSE, call.service_urn, False, code, reason, rule_id, status)


def emergency_decision(call: EmergencyClass, ctx: EmergencyContext) -> EmergencyRoute:
    """Decide one emergency or test call. Pure; the order of the checks is the rule precedence.

    R10 first (a service without dial tone never had emergency calling),
    then R11 deactivation, then R11 outages; past those the call connects.
    """
    if not ctx.plan_emergency_calling:
        return _refuse(call, 403, "plan_without_emergency_calling",
                       "Emergency calls are not available on this service (R10)", "R10")
    if ctx.account_status in DEACTIVATED_ACCOUNT_STATUSES:
        return _refuse(call, 403, "account_deactivated",
                       f"Service {ctx.account_status}: emergency calling unavailable (R11)", "R11")
    if ctx.device_state in DEACTIVATED_DEVICE_STATES:
        return _refuse(call, 403, "device_deactivated",
                       f"Device {ctx.device_state}: emergency calling unavailable (R11)", "R11")
    if ctx.outage is not None:
        what = {"power": "Power outage", "internet": "Internet outage",
                "network_blocked": "Customer network blocks the service"}.get(ctx.outage, "Outage")
        code = {"power": "site_power_outage", "internet": "site_internet_outage",
                "network_blocked": "site_network_blocked"}.get(ctx.outage, "site_outage")
        return _refuse(call, 503, code, f"{what} at device site: emergency calling unavailable (R11)", "R11")

    if call.is_test:
        return _test_route(call, ctx)

    if ctx.device_state in NOT_YET_ACTIVE_DEVICE_STATES:
        return _centre(call, "device_not_active",
                       f"Device not activated ({ctx.device_state}): no location forwarding (R15)", "R15")
    if not ctx.location_known:
        return _centre(call, "no_location", "No registered location for the device (R15)", "R15")
    if not ctx.location_forwarding:
        return _centre(call, "not_notified",
                       "Customer not yet notified that the device is active: location forwarding off (R15)",
                       "R15")
    if ctx.location_stale:
        if ctx.stale_policy == "national_centre":
            return _centre(call, "stale_location",
                           "Device location stale after a move, account policy: national centre (R13)", "R13")
        warning = "Device location may be stale after a move; last registered location sent (R13)"
        return EmergencyRoute(RouteKind.PSAP, call.service_urn, True, "stale_location_used", warning, "R13",
                              warnings=(warning,), notify=True)
    return EmergencyRoute(RouteKind.PSAP, call.service_urn, True, "forwarding_on",
                          "Location and callback forwarded automatically (R15)", "R15", notify=True)


def _centre(call: EmergencyClass, code: str, reason: str, rule_id: str) -> EmergencyRoute:
    return EmergencyRoute(RouteKind.NATIONAL_CENTRE, call.service_urn, False, code, reason, rule_id,
                          notify=True)


def _test_route(call: EmergencyClass, ctx: EmergencyContext) -> EmergencyRoute:
    forwarding = (ctx.device_state not in NOT_YET_ACTIVE_DEVICE_STATES and ctx.location_known
                  and ctx.location_forwarding
                  and not (ctx.location_stale and ctx.stale_policy == "national_centre"))
    if forwarding:
        warnings = ("Device location may be stale after a move (R13)",) if ctx.location_stale else ()
        return EmergencyRoute(RouteKind.PSAP, call.service_urn, True, "test_call",
                              "Test call: location and callback read back", None, warnings=warnings)
    return EmergencyRoute(RouteKind.PSAP, call.service_urn, False, "test_call",
                          "Test call without location: forwarding not on for this device (R15)", "R15")


# --- editing the forwarded INVITE ------------------------------------------------------------

def pidf_for_call(location: Mapping[str, Any] | CivicAddress, *, device_id: int, mac: str | None,
                  callback: str | None, domain: str, now: datetime) -> tuple[bytes, str]:
    """The PIDF-LO for one emergency call from a device, and a fresh Content-ID for it.

    `location` is the device's registered (dispatchable) location: a
    provisioning Location row as a dict (civic fields; other keys ignored) or
    a CivicAddress. The device id is `mac:<mac>` for phones with a MAC, else
    `urn:voiplab:device:<id>` (`e911.pidf.device_uri`); the entity is the
    callback number at our domain; xml:lang comes from the country profile;
    method Manual (a customer-registered address); timestamp `now` (the
    gateway clock's wall time, so the PSAP simulator sees a fresh one).
    """
    civic = location if isinstance(location, CivicAddress) else CivicAddress.from_mapping(location)
    profile = profile_for(civic.country) if civic.country else None
    entity = f"pres:{callback or f'device-{device_id}'}@{domain}"
    pidf = build_pidf(civic, entity=entity, device_id=device_uri(device_id, mac), timestamp=now,
                      lang=profile.lang if profile is not None else None)
    return pidf, new_content_id(domain)


def attach_location(req: Request, *, pidf: bytes, cid: str, callback: str | None, host: str,
                    display: str | None = None, loc_src: str | None = None,
                    routing_allowed: bool = False) -> None:
    """Make `req` (the copy forwarded to the PSAP) carry location by value, RFC 6442 style.

    The SDP offer (the body, or the SDP part of a multipart body the phone
    sent) and the PIDF-LO become a multipart/mixed body; any Geolocation the
    phone sent is replaced (the registered location is authoritative);
    `Geolocation`, `Geolocation-Routing`, and `P-Asserted-Identity` with the
    E.164 callback (when known) are set. Content-Length follows the body.
    """
    sdp = find_sdp(req.get("content-type"), req.body)
    content_type, body = location_body(pidf, cid, sdp)
    for name in ("geolocation", "geolocation-routing"):
        req.remove(name)
    for name, value in geolocation_headers(cid, routing_allowed=routing_allowed, loc_src=loc_src):
        req.add(name.lower(), value)
    if callback is not None:
        req.set("p-asserted-identity", callback_identity(callback, host, display))
    req.set("content-type", content_type)
    req.body = body


def strip_location(req: Request, *, keep_identity: bool = False) -> None:
    """Make `req` (the copy forwarded to the national centre) carry no location (R15).

    Removes Geolocation headers and any PIDF-LO part, leaving the SDP; drops
    P-Asserted-Identity too unless `keep_identity` (R15 gates the automatic
    forwarding of the callback number as well as the location).
    """
    for name in ("geolocation", "geolocation-routing", "geolocation-error"):
        req.remove(name)
    if not keep_identity:
        req.remove("p-asserted-identity")
    content_type = req.get("content-type")
    if content_type and parse_content_type(content_type)[0].startswith("multipart/"):
        sdp = find_sdp(content_type, req.body)
        if sdp is None:
            req.remove("content-type")
            req.body = b""
        else:
            req.set("content-type", "application/sdp")
            req.body = sdp
    elif content_type and parse_content_type(content_type)[0] == PIDF:
        req.remove("content-type")
        req.body = b""

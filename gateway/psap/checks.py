"""The PSAP simulator's judgement of one INVITE: pure, so every check is testable without sockets.

`inspect_invite` decides the call's role from the Request-URI / To
(``urn:service:sos[.x]``, ``urn:service:test.sos[.x]``, a legacy dial string
like 911, or the national centre's user) and then runs the checks for that
role, each a `Check(name, passed, detail)`:

=====================  ==========================================================  ==================
check                  passes when                                                 roles
=====================  ==========================================================  ==================
request_uri            R-URI or To is an emergency URN / accepted dial string      all
callback_e164          P-Asserted-Identity holds an E.164 number                   emergency, test
contact                a SIP Contact to call back on is present                    emergency, test
geolocation            Geolocation names a cid: that matches a body part            emergency, test
pidf_schema            the PIDF-LO validates against the RFC schemas (lxml)        emergency, test
pidf_rfc5491           RFC 5491 device rules (dm:device, deviceID, gbp, method …)  emergency, test
pidf_timestamp         <dm:timestamp> within `max_pidf_age` of now                  emergency, test
retransmission         usage rules let the PSAP pass the location to responders     emergency, test
location_matches       civic address equals the registered one, field by field      emergency, test
callback_matches       callback equals the registered callback number               emergency, test
sdp_offer              the INVITE carries an SDP offer                              emergency, test
no_location            no location was conveyed (R15: forwarding not on yet)        national_centre
=====================  ==========================================================  ==================

Answer: 424 Bad Location Information + Geolocation-Error when the location
cannot be used (not by value, cid without a part, not a valid PIDF-LO);
`mismatch_status` (default 200: the call connects, the verdict fails) when
it is valid but differs from the registered one; 200 otherwise. Test calls
are always answered 200 with the read-back; the national centre always 200.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from e911.civic import CallbackError, CivicAddress, differences, format_address, is_e164, to_e164
from e911.conveyance import (
    ConveyanceError,
    ConveyedLocation,
    extract_location,
    find_sdp,
    geolocation_error_value,
    parse_multipart,
)
from e911.dialplans import EmergencyKind, default_dialplans, dialled_string, is_sos_urn, is_test_urn
from e911.pidf import PidfError, PidfLo, PidfValidator, parse_pidf, rfc5491_problems
from gateway.psap.log import Check, ExpectedLookup
from gateway.sip.errors import ParseError
from gateway.sip.message import Request
from gateway.sip.uri import SipURI, parse_name_addr


class Role(Enum):
    EMERGENCY = "emergency"
    TEST = "test"
    NATIONAL_CENTRE = "national_centre"


def _numbers(kind: EmergencyKind) -> frozenset[str]:
    return default_dialplans().dial_strings(kind)


@dataclass(frozen=True, slots=True)
class PsapConfig:
    """How the simulator judges and answers.

    - `mode`: "psap" (judge location) or "national_centre" (every call is a
      national emergency call centre call: no location expected).
    - `legacy_mode`: accept a dialled emergency number (911, 112 …) in the
      R-URI or To instead of a service URN.
    - `ecrc_user`: R-URI user that selects the national-centre role per call.
    - `mismatch_status`: answer for a valid location that differs from the
      registered one (200 connects and records a failing verdict; 424 refuses).
    - `max_pidf_age` / `clock_skew`: seconds a PIDF-LO timestamp may lie in
      the past / future (None: not checked).
    - `answer_delay`: seconds of 180 Ringing before the 200 (CANCEL window).
    - `readback_multipart`: 933's 200 carries SDP + text/plain as
      multipart/mixed (a caller needs its SDP answer); False: text/plain only.
    """

    mode: str = "psap"
    legacy_mode: bool = True
    emergency_numbers: frozenset[str] = field(default_factory=lambda: _numbers(EmergencyKind.EMERGENCY))
    test_numbers: frozenset[str] = field(default_factory=lambda: _numbers(EmergencyKind.TEST))
    ecrc_user: str = "ecrc"
    mismatch_status: int = 200
    max_pidf_age: float | None = 86_400.0
    clock_skew: float = 300.0
    answer_delay: float = 0.0
    readback_multipart: bool = True
    user_agent: str = "voiplab-psap/0.1"

    def __post_init__(self) -> None:
        if self.mode not in ("psap", "national_centre"):
            raise ValueError("mode must be 'psap' or 'national_centre'")
        if self.mismatch_status not in (200, 424):
            raise ValueError("mismatch_status must be 200 or 424")
        if self.answer_delay < 0:
            raise ValueError("answer_delay must not be negative")


@dataclass(slots=True)
class Inspection:
    """The judgement of one INVITE: role, checks, and how to answer it."""

    role: Role | None
    service_urn: str | None
    checks: list[Check]
    status: int
    reason: str
    geolocation_error: str | None = None
    pidf: bytes | None = None
    location: PidfLo | None = None
    device_id: str | None = None
    callback: str | None = None
    expected: CivicAddress | None = None
    expected_callback: str | None = None
    differences: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    sdp_offer: bytes | None = None
    readback: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "pass" if all(c.passed for c in self.checks if c.counts) else "fail"


# --- role ------------------------------------------------------------------------------------

def role_of(req: Request, config: PsapConfig) -> tuple[Role | None, str | None, Check]:
    """Which service the INVITE asks for, its service URN, and the `request_uri` check."""
    try:
        to_uri = str(req.to.uri)
    except ParseError:
        to_uri = ""
    targets = [("R-URI", req.uri), ("To", to_uri)]
    ruri_user = dialled_string(req.uri)
    centre = config.mode == "national_centre" or (bool(config.ecrc_user) and ruri_user == config.ecrc_user)
    for where, uri in targets:
        if is_test_urn(uri) and not centre:
            return Role.TEST, uri.lower(), Check("request_uri", True, f"{where} is {uri}")
        if is_sos_urn(uri):
            role = Role.NATIONAL_CENTRE if centre else Role.EMERGENCY
            return role, uri.lower(), Check("request_uri", True, f"{where} is {uri}")
    if config.legacy_mode:
        for where, uri in targets:
            dialled = re.sub(r"[\s().\-]", "", dialled_string(uri))
            if dialled in config.test_numbers and not centre:
                return Role.TEST, "urn:service:test.sos", Check(
                    "request_uri", True, f"{where} is the test number {dialled} (legacy mode)")
            if dialled in config.emergency_numbers:
                role = Role.NATIONAL_CENTRE if centre else Role.EMERGENCY
                return role, "urn:service:sos", Check(
                    "request_uri", True, f"{where} is the emergency number {dialled} (legacy mode)")
    if centre:
        return Role.NATIONAL_CENTRE, None, Check("request_uri", True,
                                                 f"R-URI user {ruri_user!r} selects the national centre")
    return None, None, Check("request_uri", False,
                             f"neither R-URI {req.uri!r} nor To {to_uri!r} is urn:service:sos[.x]"
                             + (" or an emergency number" if config.legacy_mode else ""))


# --- single checks -----------------------------------------------------------------------------

def callback_of(req: Request) -> tuple[str | None, str]:
    """The E.164 callback in P-Asserted-Identity (sip:+…;user=phone or tel:+…), and a detail."""
    values = req.values("p-asserted-identity")
    if not values:
        return None, "no P-Asserted-Identity header"
    for value in values:
        try:
            uri = parse_name_addr(value).uri
        except ParseError:
            continue
        if isinstance(uri, SipURI):
            number = uri.user_unescaped or ""
        elif uri.scheme == "tel":
            number = uri.raw[4:].split(";", 1)[0]
        else:
            continue
        number = re.sub(r"[\-.()]", "", number)
        if is_e164(number):
            return number, f"P-Asserted-Identity {value}"
    return None, f"no E.164 number in P-Asserted-Identity ({', '.join(values)})"


def _contact_check(req: Request) -> Check:
    try:
        contacts = req.contacts
    except ParseError as exc:
        return Check("contact", False, f"malformed Contact: {exc.reason}")
    if contacts == "*" or not contacts:
        return Check("contact", False, "no Contact to call back on")
    uri = contacts[0].uri
    if not isinstance(uri, SipURI):
        return Check("contact", False, f"Contact {contacts[0].raw} is not a SIP URI")
    return Check("contact", True, f"Contact {uri}")


def _timestamp_check(location: PidfLo, config: PsapConfig, now: datetime) -> Check:
    if config.max_pidf_age is None:
        return Check("pidf_timestamp", True, "not checked", counts=False)
    ts = location.timestamp
    if ts is None:
        return Check("pidf_timestamp", False, "no timestamp in the PIDF-LO")
    age = (now - ts).total_seconds()
    if age > config.max_pidf_age:
        return Check("pidf_timestamp", False, f"timestamp {ts.isoformat()} is {age:.0f} s old "
                     f"(more than {config.max_pidf_age:.0f} s)")
    if -age > config.clock_skew:
        return Check("pidf_timestamp", False, f"timestamp {ts.isoformat()} is {-age:.0f} s in the future")
    return Check("pidf_timestamp", True, f"timestamp {ts.isoformat()}")


def _same_callback(conveyed: str | None, registered: str, country: str) -> bool:
    if conveyed is None:
        return False
    if is_e164(registered):
        return conveyed == registered
    try:
        return conveyed == to_e164(registered, country)
    except CallbackError:
        return False


# --- the inspection ----------------------------------------------------------------------------

def inspect_invite(req: Request, config: PsapConfig, lookup: ExpectedLookup, validator: PidfValidator,
                   now: datetime) -> Inspection:
    """Judge one initial INVITE; never raises for bad input (bad input is a failing check)."""
    role, urn, request_check = role_of(req, config)
    sdp = find_sdp(req.get("content-type"), req.body)
    if role is None:
        return Inspection(None, None, [request_check], 404, "Not an Emergency Service", sdp_offer=sdp)
    callback, callback_detail = callback_of(req)
    if role is Role.NATIONAL_CENTRE:
        return _inspect_centre(req, urn, request_check, callback, callback_detail, sdp)
    insp = Inspection(role, urn, [request_check], 200, "OK", callback=callback, sdp_offer=sdp)
    checks = insp.checks
    checks.append(Check("callback_e164", callback is not None, callback_detail))
    checks.append(_contact_check(req))
    conveyed = _conveyed(req, insp)
    if conveyed is not None:
        _judge_pidf(conveyed, insp, config, lookup, validator, now)
    checks.append(Check("sdp_offer", sdp is not None, "SDP offer present" if sdp is not None
                        else "no SDP offer in the INVITE"))
    if role is Role.TEST:
        insp.status, insp.reason, insp.geolocation_error = 200, "OK", None
        insp.readback = readback_text(insp)
    return insp


def _conveyed(req: Request, insp: Inspection) -> ConveyedLocation | None:
    """The geolocation check; sets 424 + Geolocation-Error when location is there but unusable."""
    values = req.get_all("geolocation")
    try:
        conveyed = extract_location(values, req.get("geolocation-routing"), req.get("content-type"), req.body)
    except ConveyanceError as exc:
        insp.checks.append(Check("geolocation", False, exc.message))
        if values:  # location was sent but cannot be used: 424 (no header at all: nothing to refuse)
            insp.status, insp.reason = 424, "Bad Location Information"
            insp.geolocation_error = exc.geolocation_error()
        return None
    insp.checks.append(Check("geolocation", True, f"Geolocation <cid:{conveyed.cid}> names a "
                             "application/pidf+xml body part"))
    insp.notes.extend(conveyed.notes)
    insp.pidf = conveyed.pidf
    return conveyed


def _judge_pidf(conveyed: ConveyedLocation, insp: Inspection, config: PsapConfig, lookup: ExpectedLookup,
                validator: PidfValidator, now: datetime) -> None:
    checks = insp.checks
    schema_errors = validator.schema_errors(conveyed.pidf)
    checks.append(Check("pidf_schema", not schema_errors, "; ".join(schema_errors) or
                        "valid against RFC 3863/4479/4119/5139 schemas"))
    rfc_problems = [p for p in rfc5491_problems(conveyed.pidf) if p not in schema_errors]
    checks.append(Check("pidf_rfc5491", not rfc_problems, "; ".join(rfc_problems) or "device PIDF-LO as "
                        "RFC 5491 asks"))
    try:
        location = parse_pidf(conveyed.pidf)
    except PidfError as exc:
        location = None
        insp.notes.append(f"PIDF-LO unreadable: {exc}")
    if schema_errors or rfc_problems or location is None:
        insp.status, insp.reason = 424, "Bad Location Information"
        insp.geolocation_error = geolocation_error_value(100)
    if location is None:
        return
    insp.location = location
    insp.device_id = location.device_id or None
    checks.append(_timestamp_check(location, config, now))
    retx = location.retransmission_allowed
    checks.append(Check("retransmission", retx is True,
                        "retransmission allowed" if retx else
                        "usage rules forbid passing the location to responders" if retx is False else
                        "no retransmission-allowed rule"))
    expected = lookup(location.device_id) if location.device_id else None
    if expected is None:
        checks.append(Check("location_matches", False,
                            f"no registered location for device {location.device_id or '(none)'}"))
        return
    registered = CivicAddress.from_mapping(expected)
    insp.expected = registered
    insp.differences = differences(location.civic, registered)
    if insp.differences:
        listed = ", ".join(f"{name.upper() if name != 'country' else name}: conveyed {a!r}, registered {b!r}"
                           for name, a, b in insp.differences)
        checks.append(Check("location_matches", False, listed))
        if insp.status == 200 and config.mismatch_status == 424:
            insp.status, insp.reason = 424, "Bad Location Information"
            insp.geolocation_error = geolocation_error_value(100)
    else:
        checks.append(Check("location_matches", True,
                            f"{len(registered.elements())} civic elements equal the registered location"))
    registered_callback = expected.get("callback_number")
    if registered_callback:
        insp.expected_callback = str(registered_callback)
        same = _same_callback(insp.callback, str(registered_callback), registered.country)
        checks.append(Check("callback_matches", same, f"conveyed {insp.callback}, registered "
                            f"{registered_callback}"))


def _inspect_centre(req: Request, urn: str | None, request_check: Check, callback: str | None,
                    callback_detail: str, sdp: bytes | None) -> Inspection:
    """A national emergency call centre call: R15 says no location may have been forwarded."""
    insp = Inspection(Role.NATIONAL_CENTRE, urn, [request_check], 200, "OK", callback=callback,
                      sdp_offer=sdp)
    conveyed: list[str] = []
    if req.get_all("geolocation"):
        conveyed.append("a Geolocation header")
    content_type = req.get("content-type")
    if content_type and "multipart/" in content_type.lower():
        try:
            if any(p.content_type == "application/pidf+xml" for p in parse_multipart(content_type, req.body)):
                conveyed.append("a PIDF-LO body part")
        except ConveyanceError:
            pass
    elif content_type and content_type.lower().startswith("application/pidf+xml"):
        conveyed.append("a PIDF-LO body")
    insp.checks.append(Check("no_location", not conveyed,
                             "no location conveyed; the call taker asks for it" if not conveyed else
                             f"location was forwarded before the customer notice (R15): {', '.join(conveyed)}"))
    insp.checks.append(Check("callback_e164", callback is not None, callback_detail, counts=False))
    return insp


def readback_text(insp: Inspection) -> str:
    """The 933 read-back: the callback and address received, and how they differ from the registration."""
    lines = ["voiplab PSAP simulator: 933 test call read-back"]
    lines.append(f"Callback number: {insp.callback or 'not received'}")
    if insp.location is not None:
        lines.append(f"Location received: {format_address(insp.location.civic)}")
        lines.append(f"Device: {insp.location.device_id or 'unknown'}")
    else:
        failed = next((c.detail for c in insp.checks if c.name == "geolocation" and not c.passed), None)
        lines.append(f"Location received: none ({failed or 'no usable PIDF-LO'})")
    if insp.expected is not None:
        lines.append(f"Registered location: {format_address(insp.expected)}")
    if insp.expected_callback is not None:
        lines.append(f"Registered callback: {insp.expected_callback}")
    diffs = [f"{n.upper() if n != 'country' else n}: received {a or '(none)'}, registered {b or '(none)'}"
             for n, a, b in insp.differences]
    if insp.expected_callback is not None and not _same_callback(
            insp.callback, insp.expected_callback, insp.expected.country if insp.expected else ""):
        diffs.append(f"callback: received {insp.callback or '(none)'}, registered {insp.expected_callback}")
    lines.append("Differences: " + ("none" if not diffs else "; ".join(diffs)))
    failed_checks = [c.name for c in insp.checks if c.counts and not c.passed]
    lines.append("Result: " + ("PASS" if not failed_checks else f"FAIL ({', '.join(failed_checks)})"))
    return "\r\n".join(lines) + "\r\n"

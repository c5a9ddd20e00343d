"""gateway/emergency.py: classification, every decision branch (R10, R11, R13, R15, tests), and the
INVITE edits for the PSAP and the national centre."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from e911.civic import CivicAddress
from e911.conveyance import PIDF, SDP, extract_location, parse_multipart
from e911.dialplans import URN_SOS, URN_TEST, EmergencyKind
from e911.pidf import PidfValidator, build_pidf, parse_pidf
from gateway.emergency import (
    DEACTIVATED_ACCOUNT_STATUSES,
    EmergencyClass,
    EmergencyContext,
    RouteKind,
    attach_location,
    classify_call,
    emergency_decision,
    pidf_for_call,
    strip_location,
)
from gateway.sip.message import Request
from gateway.sip.parser import parse_message

OK = EmergencyContext(account_status="active", plan_emergency_calling=True, device_state="active",
                      location_known=True, location_forwarding=True)


def call911() -> EmergencyClass:
    c = classify_call("911", "US")
    assert c is not None
    return c


def test_classify_call_returns_none_for_ordinary_calls() -> None:
    assert classify_call("1002", "US") is None
    assert classify_call("sip:alice@gw", "US") is None
    assert classify_call("112", "US") is None


@pytest.mark.parametrize(("ruri", "region", "kind", "urn", "legacy"), [
    ("911", "US", EmergencyKind.EMERGENCY, URN_SOS, True),
    ("sip:9911@gw;user=phone", "US", EmergencyKind.EMERGENCY, URN_SOS, True),
    ("933", "US", EmergencyKind.TEST, URN_TEST, True),
    ("112", "EU", EmergencyKind.EMERGENCY, URN_SOS, True),
    ("999", "UK", EmergencyKind.EMERGENCY, URN_SOS, True),
    ("000", "AU", EmergencyKind.EMERGENCY, URN_SOS, True),
    ("urn:service:sos.fire", "EU", EmergencyKind.EMERGENCY, "urn:service:sos.fire", False),
])
def test_classify_call(ruri: str, region: str, kind: EmergencyKind, urn: str, legacy: bool) -> None:
    c = classify_call(ruri, region)
    assert c is not None and (c.kind, c.service_urn, c.legacy, c.region) == (kind, urn, legacy, region)


def test_connected_call_goes_to_the_psap_with_location() -> None:
    route = emergency_decision(call911(), OK)
    assert (route.kind, route.with_location, route.code, route.rule_id) == (
        RouteKind.PSAP, True, "forwarding_on", "R15")
    assert route.notify and not route.refused and route.status is None
    assert route.service_urn == URN_SOS and route.refusal_headers("gw") == []


def test_r10_plan_without_emergency_calling_is_refused_with_its_rule() -> None:
    route = emergency_decision(call911(), replace(OK, plan_emergency_calling=False))
    assert (route.kind, route.status, route.rule_id, route.code) == (
        RouteKind.REFUSE, 403, "R10", "plan_without_emergency_calling")
    assert "R10" in route.reason and not route.notify and not route.with_location
    assert route.refusal_headers("gw.example.net") == [
        ("Warning", '399 gw.example.net "Emergency calls are not available on this service (R10)"')]


def test_r10_wins_over_r11() -> None:
    route = emergency_decision(call911(), replace(OK, plan_emergency_calling=False, account_status="suspended",
                                                  outage="power"))
    assert route.rule_id == "R10"


@pytest.mark.parametrize("status", sorted(DEACTIVATED_ACCOUNT_STATUSES))
def test_r11_deactivated_account_is_refused(status: str) -> None:
    route = emergency_decision(call911(), replace(OK, account_status=status))
    assert (route.kind, route.status, route.rule_id, route.code) == (RouteKind.REFUSE, 403, "R11",
                                                                      "account_deactivated")
    assert "R11" in route.reason and status in route.reason


@pytest.mark.parametrize("state", ["suspended", "retired"])
def test_r11_deactivated_device_is_refused(state: str) -> None:
    route = emergency_decision(call911(), replace(OK, device_state=state))
    assert (route.status, route.rule_id, route.code) == (403, "R11", "device_deactivated")


@pytest.mark.parametrize(("outage", "code", "words"), [
    ("power", "site_power_outage", "Power outage"),
    ("internet", "site_internet_outage", "Internet outage"),
    ("network_blocked", "site_network_blocked", "network blocks"),
])
def test_r11_outages_fail_the_call(outage: str, code: str, words: str) -> None:
    route = emergency_decision(call911(), replace(OK, outage=outage))
    assert (route.kind, route.status, route.rule_id, route.code) == (RouteKind.REFUSE, 503, "R11", code)
    assert words in route.reason and "R11" in route.reason


def test_an_unknown_account_status_does_not_block_an_emergency_call() -> None:
    route = emergency_decision(call911(), replace(OK, account_status="past_due_warning"))
    assert route.kind is RouteKind.PSAP


@pytest.mark.parametrize(("change", "code", "rule"), [
    ({"location_forwarding": False}, "not_notified", "R15"),
    ({"location_known": False}, "no_location", "R15"),
    ({"device_state": "located"}, "device_not_active", "R15"),
    ({"device_state": "new", "location_known": False}, "device_not_active", "R15"),
    ({"location_stale": True, "stale_policy": "national_centre"}, "stale_location", "R13"),
])
def test_calls_that_connect_to_the_national_centre_without_location(change: dict[str, object], code: str,
                                                                     rule: str) -> None:
    route = emergency_decision(call911(), replace(OK, **change))  # type: ignore[arg-type]
    assert (route.kind, route.with_location, route.code, route.rule_id) == (
        RouteKind.NATIONAL_CENTRE, False, code, rule)
    assert route.notify and route.status is None and rule in route.reason


def test_r13_stale_location_with_use_last_policy_goes_to_the_psap_with_a_warning() -> None:
    route = emergency_decision(call911(), replace(OK, location_stale=True, stale_policy="use_last"))
    assert (route.kind, route.with_location, route.code, route.rule_id) == (
        RouteKind.PSAP, True, "stale_location_used", "R13")
    assert route.warnings and "stale" in route.warnings[0]


def test_non_safety_inputs_do_not_exist_in_the_decision() -> None:
    """Caps, fair use and fraud are not inputs at all: the proxy never asks the policy for these calls."""
    assert set(EmergencyContext.__dataclass_fields__) == {
        "account_status", "plan_emergency_calling", "device_state", "location_known",
        "location_forwarding", "outage", "location_stale", "stale_policy"}


@pytest.mark.parametrize(("change", "with_location", "warned"), [
    ({}, True, False),
    ({"location_forwarding": False}, False, False),
    ({"location_known": False}, False, False),
    ({"device_state": "located"}, False, False),
    ({"location_stale": True}, True, True),
    ({"location_stale": True, "stale_policy": "national_centre"}, False, False),
])
def test_933_test_calls_always_reach_the_psap_read_back(change: dict[str, object], with_location: bool,
                                                         warned: bool) -> None:
    test = classify_call("933", "US")
    assert test is not None and test.is_test
    route = emergency_decision(test, replace(OK, **change))  # type: ignore[arg-type]
    assert (route.kind, route.with_location, route.code) == (RouteKind.PSAP, with_location, "test_call")
    assert route.service_urn == URN_TEST and not route.notify
    assert bool(route.warnings) is warned


@pytest.mark.parametrize(("change", "rule"), [
    ({"plan_emergency_calling": False}, "R10"), ({"account_status": "suspended"}, "R11"),
    ({"outage": "internet"}, "R11"),
])
def test_933_obeys_r10_and_r11(change: dict[str, object], rule: str) -> None:
    test = classify_call("933", "US")
    assert test is not None
    route = emergency_decision(test, replace(OK, **change))  # type: ignore[arg-type]
    assert route.refused and route.rule_id == rule


# --- INVITE edits -----------------------------------------------------------------------------

OFFER = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
INVITE = (b"INVITE sip:911@gw.example.net SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1\r\n"
          b"From: \"Ann\" <sip:acct-1001@gw.example.net>;tag=a1\r\nTo: <sip:911@gw.example.net>\r\n"
          b"Call-ID: c1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:acct-1001@127.0.0.1:5062>\r\n"
          b"Content-Type: application/sdp\r\nContent-Length: " + str(len(OFFER)).encode() + b"\r\n\r\n" + OFFER)
PIDF_DOC = build_pidf(CivicAddress(country="US", a1="IL", a3="Springfield", rd="Main", hno="100", pc="62701"),
                      entity="pres:+12175550123@gw.example.net", device_id="urn:voiplab:device:7",
                      timestamp=datetime(2026, 1, 1, tzinfo=UTC))


def invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


def test_attach_location_makes_an_rfc6442_invite_that_parses_back() -> None:
    req = invite()
    req.set_uri(URN_SOS)
    attach_location(req, pidf=PIDF_DOC, cid="loc-1@gw.example.net", callback="+12175550123",
                    host="gw.example.net", display="Ann", loc_src="gw.example.net")
    wire = parse_message(req.to_bytes())
    assert isinstance(wire, Request) and wire.uri == URN_SOS
    assert wire.get("geolocation") == "<cid:loc-1@gw.example.net>;loc-src=gw.example.net"
    assert wire.get("geolocation-routing") == "no"
    assert wire.get("p-asserted-identity") == '"Ann" <sip:+12175550123@gw.example.net;user=phone>'
    assert wire.content_length == len(wire.body)
    conveyed = extract_location(wire.get_all("geolocation"), wire.get("geolocation-routing"),
                                wire.get("content-type"), wire.body)
    assert conveyed.sdp == OFFER and parse_pidf(conveyed.pidf).device_id == "urn:voiplab:device:7"


def test_attach_location_replaces_a_phones_own_location() -> None:
    req = invite()
    attach_location(req, pidf=b"<old/>", cid="old@phone", callback=None, host="gw")
    attach_location(req, pidf=PIDF_DOC, cid="new@gw", callback="+12175550123", host="gw")
    assert req.get_all("geolocation") == ["<cid:new@gw>"]
    parts = parse_multipart(req.get("content-type") or "", req.body)
    assert [p.content_type for p in parts] == [SDP, PIDF] and parts[0].body == OFFER
    assert parts[1].content_id == "new@gw"


def test_strip_location_leaves_only_the_offer_and_no_identity() -> None:
    req = invite()
    attach_location(req, pidf=PIDF_DOC, cid="c@gw", callback="+12175550123", host="gw")
    strip_location(req)
    wire = parse_message(req.to_bytes())
    assert isinstance(wire, Request)
    assert not wire.has("geolocation") and not wire.has("geolocation-routing")
    assert not wire.has("p-asserted-identity")
    assert wire.get("content-type") == "application/sdp" and wire.body == OFFER


def test_strip_location_can_keep_the_identity_and_handles_pidf_only_bodies() -> None:
    req = invite()
    req.set("p-asserted-identity", "<sip:+12175550123@gw;user=phone>")
    req.set("content-type", "application/pidf+xml")
    req.body = PIDF_DOC
    strip_location(req, keep_identity=True)
    assert req.has("p-asserted-identity") and not req.has("content-type") and req.body == b""


def test_pidf_for_call_builds_a_valid_document_from_a_location_row() -> None:
    row = {"id": 3, "account_id": 1, "name": "HQ", "country": "GB", "a3": "London", "rd": "Downing Street",
           "hno": "10", "pc": "SW1A 2AA", "flr": "1", "callback_number": "+442079460000"}
    now = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
    pidf, cid = pidf_for_call(row, device_id=9, mac=None, callback="+442079460000", domain="gw.example.net",
                              now=now)
    assert PidfValidator().problems(pidf) == []
    parsed = parse_pidf(pidf)
    assert parsed.device_id == "urn:voiplab:device:9" and parsed.entity == "pres:+442079460000@gw.example.net"
    assert parsed.lang == "en-GB" and parsed.timestamp == now and parsed.method == "Manual"
    assert parsed.civic == CivicAddress.from_mapping(row)
    assert cid.startswith("loc-") and cid.endswith("@gw.example.net")
    with_mac, _ = pidf_for_call(CivicAddress.from_mapping(row), device_id=9, mac="00:15:65:AB:CD:EF",
                                callback=None, domain="gw", now=now)
    assert parse_pidf(with_mac).device_id == "mac:001565abcdef"

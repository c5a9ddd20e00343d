"""PIDF-LO build/parse round trips, validated with lxml against the RFC schemas (e911/pidf.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from e911.civic import CIVIC_FIELDS, CivicAddress, check
from e911.pidf import (
    PidfError,
    PidfValidator,
    build_pidf,
    device_uri,
    parse_device_uri,
    parse_pidf,
    rfc5491_problems,
)

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ENTITY = "pres:+12175550123@gw.example.net"
DEVICE = "mac:00163e5a7c2e"

# notes/e911.md §1.2 "Minimal civic PIDF-LO", with retransmission-allowed as the schema's xs:boolean
NOTES_EXAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
          xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
          xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
          xmlns:gbp="urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
          entity="pres:+12175550123@gw.example.net">
  <dm:device id="dev-00163e5a7c2e">
    <gp:geopriv>
      <gp:location-info>
        <ca:civicAddress xml:lang="en-US">
          <ca:country>US</ca:country>
          <ca:A1>IL</ca:A1>
          <ca:A2>Sangamon</ca:A2>
          <ca:A3>Springfield</ca:A3>
          <ca:PRD>E</ca:PRD>
          <ca:RD>Main</ca:RD>
          <ca:STS>ST</ca:STS>
          <ca:HNO>100</ca:HNO>
          <ca:FLR>4</ca:FLR>
          <ca:NAM>Example Corp</ca:NAM>
          <ca:PC>62701</ca:PC>
          <ca:BLD>North Tower</ca:BLD>
          <ca:ROOM>410</ca:ROOM>
        </ca:civicAddress>
      </gp:location-info>
      <gp:usage-rules>
        <gbp:retransmission-allowed>true</gbp:retransmission-allowed>
        <gbp:retention-expiry>2026-01-01T00:00:00Z</gbp:retention-expiry>
      </gp:usage-rules>
      <gp:method>Manual</gp:method>
    </gp:geopriv>
    <dm:deviceID>mac:00163e5a7c2e</dm:deviceID>
    <dm:timestamp>2025-06-01T12:00:00Z</dm:timestamp>
  </dm:device>
</presence>
"""

SPRINGFIELD = CivicAddress(country="US", a1="IL", a2="Sangamon", a3="Springfield", prd="E", rd="Main",
                           sts="ST", hno="100", flr="4", nam="Example Corp", pc="62701",
                           bld="North Tower", room="410")


@pytest.fixture(scope="module")
def validator() -> PidfValidator:
    return PidfValidator()


def build(civic: CivicAddress = SPRINGFIELD, **kw: object) -> bytes:
    args: dict[str, object] = {"entity": ENTITY, "device_id": DEVICE, "timestamp": AT, "lang": "en-US"}
    args.update(kw)
    return build_pidf(civic, **args)  # type: ignore[arg-type]


def test_the_notes_example_validates(validator: PidfValidator) -> None:
    assert validator.problems(NOTES_EXAMPLE) == []
    parsed = parse_pidf(NOTES_EXAMPLE)
    assert parsed.civic == SPRINGFIELD
    assert (parsed.device_id, parsed.element_id, parsed.method) == (DEVICE, "dev-00163e5a7c2e", "Manual")


def test_the_notes_example_with_yes_fails_the_boolean_schema(validator: PidfValidator) -> None:
    """RFC 4119's basicPolicy schema types retransmission-allowed as xs:boolean (notes §1.2 wrote "yes")."""
    doc = NOTES_EXAMPLE.replace(b">true<", b">yes<")
    errors = validator.schema_errors(doc)
    assert len(errors) == 1 and "retransmission-allowed" in errors[0] and "xs:boolean" in errors[0]


def test_build_is_schema_valid_and_parses_back_field_by_field(validator: PidfValidator) -> None:
    doc = build()
    assert validator.problems(doc) == []
    parsed = parse_pidf(doc)
    assert parsed.civic == SPRINGFIELD
    for name in CIVIC_FIELDS:
        assert getattr(parsed.civic, name) == getattr(SPRINGFIELD, name), name
    assert parsed.entity == ENTITY and parsed.device_id == DEVICE
    assert parsed.lang == "en-US" and parsed.method == "Manual"
    assert parsed.timestamp == AT and parsed.retention_expiry == AT + timedelta(days=1)
    assert parsed.retransmission_allowed is True and parsed.extra_elements == ()


def test_every_civic_element_round_trips(validator: PidfValidator) -> None:
    every = CivicAddress(**{name: ("US" if name == "country" else f"v-{name}") for name in CIVIC_FIELDS})
    doc = build(every)
    assert validator.problems(doc) == []
    assert parse_pidf(doc).civic == every


@pytest.mark.parametrize("address", [
    {"country": "GB", "a3": "London", "rd": "Downing Street", "hno": "10", "pc": "SW1A 2AA"},
    {"country": "DE", "a3": "Köln", "rd": "Straße des 17. Juni", "hno": "1", "pc": "50667"},
    {"country": "FR", "a3": "Paris", "rd": "Rue de l'Église & Fils <Annexe>", "hno": "9", "pc": "75001"},
])
def test_non_ascii_and_markup_characters_survive(validator: PidfValidator, address: dict[str, str]) -> None:
    civic, problems = check(address)
    assert problems == []
    doc = build(civic, lang=None)
    assert validator.problems(doc) == []
    assert parse_pidf(doc).civic == civic


def test_usage_rules_and_method_options(validator: PidfValidator) -> None:
    expiry = AT + timedelta(hours=2)
    doc = build(retransmission_allowed=False, retention_expiry=expiry, method="LIS")
    assert validator.problems(doc) == []
    parsed = parse_pidf(doc)
    assert (parsed.retransmission_allowed, parsed.retention_expiry, parsed.method) == (False, expiry, "LIS")


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        build(timestamp=datetime(2026, 1, 1))


def test_device_uris() -> None:
    assert device_uri(7, "00:16:3E:5A:7C:2E") == "mac:00163e5a7c2e"
    assert device_uri(42) == "urn:voiplab:device:42"
    assert parse_device_uri("mac:00163e5a7c2e") == ("mac", "00163e5a7c2e")
    assert parse_device_uri("urn:voiplab:device:42") == ("device", 42)
    assert parse_device_uri("urn:uuid:1234") is None
    assert parse_device_uri("mac:0016") is None


# --- negative cases (notes §1.1 order rule, Asterisk PR #1672 list) ----------------------

def test_wrong_element_order_fails_the_schema(validator: PidfValidator) -> None:
    doc = NOTES_EXAMPLE.replace(b"<ca:RD>Main</ca:RD>\n          <ca:STS>ST</ca:STS>\n          <ca:HNO>100</ca:HNO>",
                                b"<ca:HNO>100</ca:HNO>\n          <ca:RD>Main</ca:RD>\n          <ca:STS>ST</ca:STS>")
    assert doc != NOTES_EXAMPLE
    errors = validator.schema_errors(doc)
    assert errors and "RD" in errors[0]


def test_usage_rules_in_the_gp_namespace_pass_the_schema_but_not_rfc5491(validator: PidfValidator) -> None:
    doc = NOTES_EXAMPLE.replace(b"gbp:retention-expiry", b"gp:retention-expiry")
    assert validator.schema_errors(doc) == []  # the lax wildcard lets it through …
    problems = rfc5491_problems(doc)
    assert len(problems) == 1 and "basicPolicy" in problems[0]  # … RFC 5491 does not
    assert validator.problems(doc) == problems


@pytest.mark.parametrize(("edit", "needle"), [
    ((b'<dm:device id="dev-00163e5a7c2e">', b"<dm:device>"), "id"),
    ((b"<dm:deviceID>mac:00163e5a7c2e</dm:deviceID>", b""), "deviceID"),
    ((b"<gp:method>Manual</gp:method>", b""), "method"),
    ((b"<dm:timestamp>2025-06-01T12:00:00Z</dm:timestamp>", b""), "timestamp"),
    ((b"<ca:country>US</ca:country>", b"<ca:country>us</ca:country>"), "country"),
    ((b"2026-01-01T00:00:00Z", b"next tuesday"), "retention-expiry"),
])
def test_broken_documents_are_reported(validator: PidfValidator, edit: tuple[bytes, bytes], needle: str) -> None:
    doc = NOTES_EXAMPLE.replace(*edit)
    assert doc != NOTES_EXAMPLE
    problems = validator.problems(doc)
    assert problems and any(needle in p for p in problems), problems


def test_location_in_a_tuple_is_read_but_flagged(validator: PidfValidator) -> None:
    doc = b"""<presence xmlns="urn:ietf:params:xml:ns:pidf"
      xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
      xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
      xmlns:gbp="urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy" entity="pres:a@b">
      <tuple id="t1"><status><gp:geopriv>
        <gp:location-info><ca:civicAddress><ca:country>US</ca:country><ca:A1>TX</ca:A1></ca:civicAddress>
        </gp:location-info><gp:usage-rules/><gp:method>Manual</gp:method>
      </gp:geopriv></status><timestamp>2026-01-01T00:00:00Z</timestamp></tuple></presence>"""
    assert validator.schema_errors(doc) == []
    assert any("dm:device" in p for p in rfc5491_problems(doc))
    parsed = parse_pidf(doc)
    assert parsed.civic == CivicAddress(country="US", a1="TX") and parsed.element_id == "t1"


@pytest.mark.parametrize(("data", "message"), [
    (b"not xml", "well-formed"),
    (b"<presence/>", "not a PIDF"),
    (b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b"/>', "geopriv"),
    (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "DTD"),
    (b"<a>" + b"x" * 70000 + b"</a>", "larger"),
])
def test_unreadable_documents_raise_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(PidfError, match=message):
        parse_pidf(data)


def test_civic_address_missing_is_a_clear_error() -> None:
    doc = NOTES_EXAMPLE.replace(b"<ca:civicAddress", b"<ca:other").replace(b"</ca:civicAddress>",
                                                                            b"</ca:other>")
    with pytest.raises(PidfError, match="civicAddress"):
        parse_pidf(doc)

"""RFC 6442 conveyance: multipart body, Geolocation headers, PAI, and reading them back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from e911.civic import CivicAddress
from e911.conveyance import (
    PIDF,
    SDP,
    ConveyanceError,
    build_multipart,
    callback_identity,
    extract_location,
    find_sdp,
    geolocation_error_value,
    geolocation_headers,
    location_body,
    new_content_id,
    parse_content_type,
    parse_geolocation,
    parse_multipart,
    routing_allowed,
)
from e911.pidf import PidfValidator, build_pidf, parse_pidf

OFFER = (b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
CIVIC = CivicAddress(country="US", a1="IL", a3="Springfield", rd="Main", sts="ST", hno="100", pc="62701",
                     flr="4")
PIDF_DOC = build_pidf(CIVIC, entity="pres:+12175550123@gw.example.net", device_id="mac:00163e5a7c2e",
                      timestamp=datetime(2026, 1, 1, tzinfo=UTC))


def test_location_body_round_trip_keeps_both_parts_byte_exact() -> None:
    cid = new_content_id("gw.example.net", "7c2e")
    assert cid == "loc-7c2e@gw.example.net"
    content_type, body = location_body(PIDF_DOC, cid, OFFER)
    media, params = parse_content_type(content_type)
    assert media == "multipart/mixed" and params["boundary"]
    headers = geolocation_headers(cid, loc_src="gw.example.net")
    assert headers == [("Geolocation", "<cid:loc-7c2e@gw.example.net>;loc-src=gw.example.net"),
                       ("Geolocation-Routing", "no")]
    conveyed = extract_location([headers[0][1]], headers[1][1], content_type, body)
    assert conveyed.cid == cid and conveyed.sdp == OFFER and conveyed.pidf == PIDF_DOC.strip()
    assert conveyed.routing_allowed is False and conveyed.notes == ()
    assert conveyed.geolocation[0].params == (("loc-src", "gw.example.net"),)
    assert parse_pidf(conveyed.pidf).civic == CIVIC
    assert PidfValidator().problems(conveyed.pidf) == []


def test_parts_carry_their_headers() -> None:
    content_type, body = location_body(PIDF_DOC, "x@y", OFFER, boundary="boundary1")
    assert content_type == "multipart/mixed;boundary=boundary1"
    assert body.startswith(b"--boundary1\r\nContent-Type: application/sdp\r\n\r\nv=0")
    assert body.endswith(b"\r\n--boundary1--\r\n")
    parts = parse_multipart(content_type, body)
    assert [p.content_type for p in parts] == [SDP, PIDF]
    assert parts[1].content_id == "x@y" and parts[1].header("Content-ID") == "<x@y>"
    assert find_sdp(content_type, body) == OFFER
    assert find_sdp(SDP, OFFER) == OFFER and find_sdp(None, b"") is None


def test_random_boundary_avoids_the_content_and_explicit_bad_ones_are_refused() -> None:
    _, body = build_multipart([([("Content-Type", "text/plain")], b"hello")])
    assert body.count(b"--voiplab-") == 2
    with pytest.raises(ValueError, match="boundary"):
        build_multipart([([("Content-Type", "text/plain")], b"a boundary1 b")], boundary="boundary1")
    with pytest.raises(ValueError, match="boundary"):
        build_multipart([([], b"x")], boundary="bad\nboundary")


# The RFC 6442 §5.1 example body shape, with its erratum 5027 defect (no blank line after Content-ID)
RFC6442_STYLE = (b"--boundary1\r\nContent-Type: application/sdp\r\n\r\n" + OFFER +
                 b"\r\n--boundary1\r\nContent-Type: application/pidf+xml\r\n"
                 b"Content-ID: <target123@atlanta.example.com>\r\n" + PIDF_DOC + b"\r\n--boundary1--\r\n")


def test_missing_blank_line_is_tolerated_and_noted() -> None:
    conveyed = extract_location(["<cid:target123@atlanta.example.com>"], None,
                                'multipart/mixed; boundary="boundary1"', RFC6442_STYLE)
    assert parse_pidf(conveyed.pidf).civic == CIVIC
    assert conveyed.notes and "5027" in conveyed.notes[0]


def test_lf_only_bodies_and_folded_part_headers_parse() -> None:
    body = RFC6442_STYLE.replace(b"\r\n", b"\n").replace(b"Content-ID: <target123",
                                                         b"Content-ID:\n <target123")
    parts = parse_multipart("multipart/mixed;boundary=boundary1", body)
    assert parts[1].content_id == "target123@atlanta.example.com"


@pytest.mark.parametrize(("geolocation", "content_type", "body", "code", "message"), [
    ([], "multipart/mixed;boundary=b", b"", 100, "no Geolocation header"),
    (["<https://lis.example.com/loc/1>"], None, b"", 300, "by reference"),
    (["cid:x@y"], None, b"", 100, "not <URI>"),
    (["<cid:x@y>"], None, b"", 100, "no body"),
    (["<cid:x@y>"], SDP, OFFER, 100, "not multipart"),
    (["<cid:x@y>"], "multipart/mixed", b"--b\r\n\r\nx\r\n--b--", 100, "without a boundary"),
    (["<cid:x@y>"], "multipart/mixed;boundary=zz", b"--b\r\n\r\nx\r\n--b--", 100, "not found"),
    (["<cid:other@y>"], "multipart/mixed;boundary=boundary1", RFC6442_STYLE, 100, "no body part"),
    (["<cid:x@y>"], "multipart/mixed;boundary=b",
     b"--b\r\nContent-Type: text/plain\r\nContent-ID: <x@y>\r\n\r\nhi\r\n--b--\r\n", 100, "not application/pidf"),
    (["<cid:x@y> junk"], None, b"", 100, "junk"),
])
def test_bad_conveyance_maps_to_geolocation_error_codes(geolocation: list[str], content_type: str | None,
                                                        body: bytes, code: int, message: str) -> None:
    with pytest.raises(ConveyanceError) as info:
        extract_location(geolocation, None, content_type, body)
    assert info.value.code == code and message in info.value.message
    assert info.value.geolocation_error().startswith(f"{code};code=")


def test_by_value_wins_over_a_reference_and_several_lines_are_read() -> None:
    values = parse_geolocation(['<http://example.org/held-link>, <cid:target123@atlanta.example.com>',
                                "<sip:loc@example.com>;purpose=x"])
    assert [v.scheme for v in values] == ["http", "cid", "sip"]
    assert values[2].params == (("purpose", "x"),)
    conveyed = extract_location(['<http://example.org/held-link>, <cid:target123@atlanta.example.com>'],
                                "yes", "multipart/mixed;boundary=boundary1", RFC6442_STYLE)
    assert conveyed.cid == "target123@atlanta.example.com" and conveyed.routing_allowed is True


def test_cid_urls_are_percent_decoded() -> None:
    assert parse_geolocation(["<cid:loc%2D1@host>"])[0].cid == "loc-1@host"


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("no", False), ("yes", True), (" YES ", True),
                                                 ("maybe", False)])
def test_geolocation_routing(value: str | None, expected: bool) -> None:
    assert routing_allowed(value) is expected


def test_callback_identity() -> None:
    assert callback_identity("+12175550123", "gw.example.net") == "<sip:+12175550123@gw.example.net;user=phone>"
    assert callback_identity("+12175550123", "gw", 'Ann "A" Lee') == \
        '"Ann \\"A\\" Lee" <sip:+12175550123@gw;user=phone>'
    with pytest.raises(ValueError, match=r"E\.164"):
        callback_identity("2175550123", "gw")


def test_geolocation_error_values() -> None:
    assert geolocation_error_value(100) == '100;code="Cannot Process Location"'
    assert geolocation_error_value(201).startswith('201;code="Permission To Retransmit')

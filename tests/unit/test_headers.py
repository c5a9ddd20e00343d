"""Header-level grammar: names, parameters, Via, CSeq (RFC 3261 §7.3, §20, §25)."""

from __future__ import annotations

import pytest

from gateway.sip import (
    COMPACT,
    CSeq,
    ParseError,
    Via,
    header_key,
    parse_cseq,
    parse_params,
    parse_via,
)
from gateway.sip.headers import canonical_name, first_comma_value, parse_top_via, pop_first_value


@pytest.mark.parametrize(
    ("name", "key"),
    [("Via", "via"), ("v", "via"), ("V", "via"), ("CALL-ID", "call-id"), ("i", "call-id"), ("m", "contact"),
     ("l", "content-length"), ("x-Custom", "x-custom"), ("z", "z")],
)  # fmt: skip
def test_header_key(name: str, key: str) -> None:
    assert header_key(name) == key


def test_compact_table_is_complete() -> None:
    assert set(COMPACT) == set("vmifltckseorbuxayjd")


@pytest.mark.parametrize(
    ("key", "name"),
    [("call-id", "Call-ID"), ("cseq", "CSeq"), ("www-authenticate", "WWW-Authenticate"),
     ("record-route", "Record-Route"), ("x-my-header", "X-My-Header"), ("max-forwards", "Max-Forwards")],
)  # fmt: skip
def test_canonical_name(key: str, name: str) -> None:
    assert canonical_name(key) == name


# ------------------------------------------------------------------ params
@pytest.mark.parametrize(
    ("text", "params"),
    [
        (";a=b;c;d=\"x;y\"", {"a": "b", "c": None, "d": "x;y"}),
        ("a=b", {"a": "b"}),
        (" ;  tag    = 1918181833n", {"tag": "1918181833n"}),
        (";Branch=z9hG4bK1;RPORT", {"branch": "z9hG4bK1", "rport": None}),
        (";received=[2001:db8::1];x=2001:db8::9:255", {"received": "[2001:db8::1]", "x": "2001:db8::9:255"}),
        (';q="a \\"b\\""', {"q": 'a "b"'}),
        (";fromParam''~+*_!.-%=\"\u0440\u0430\u0431\"", {"fromparam''~+*_!.-%": "\u0440\u0430\u0431"}),
        (";a=1;a=2", {"a": "2"}),
    ],
)
def test_parse_params(text: str, params: dict[str, str | None]) -> None:
    assert parse_params(text) == params


@pytest.mark.parametrize("text", [";", ";;", ";a;;b", ";=x", ";a=", ';a="x', ";a b=c", ";a=b c", ";a=<x>", ";a@=1"])
def test_bad_params(text: str) -> None:
    with pytest.raises(ParseError):
        parse_params(text)


# ------------------------------------------------------------------ Via
def test_via_fields() -> None:
    (via,) = parse_via("SIP/2.0/UDP 127.0.0.1:25090;branch=z9hG4bK10dcca80b5e249da;rport")
    assert via.transport == "UDP"
    assert via.host == "127.0.0.1"
    assert via.port == 25090
    assert via.branch == "z9hG4bK10dcca80b5e249da"
    assert via.rport is True
    assert via.received is None
    assert via.sent_by == ("127.0.0.1", 25090)
    assert via.raw == "SIP/2.0/UDP 127.0.0.1:25090;branch=z9hG4bK10dcca80b5e249da;rport"


def test_via_rport_value_and_defaults() -> None:
    (via,) = parse_via("SIP/2.0/TLS Host.Example;rport=5071;received=192.0.2.4")
    assert via.rport == 5071
    assert via.received == "192.0.2.4"
    assert via.host == "host.example"
    assert via.sent_by == ("host.example", 5061)
    (udp,) = parse_via("SIP/2.0/UDP host.example")
    assert udp.sent_by == ("host.example", 5060)
    assert udp.rport is None and udp.branch is None


def test_via_ws_everywhere() -> None:
    vias = parse_via(
        "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , "
        "SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239"
    )
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]


def test_via_ipv6_and_other_versions() -> None:
    (via,) = parse_via("SIP/2.0/UDP [2001:db8::9]:5080;branch=z9hG4bK1")
    assert via.host == "[2001:db8::9]" and via.port == 5080
    (v7,) = parse_via("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")  # parsed so a 505 can go back
    assert v7.host == "c.example.com"


def test_top_via_only_parses_first() -> None:
    top = parse_top_via("SIP/2.0/UDP a.example;branch=z9hG4bK1, garbage that would not parse")
    assert top.host == "a.example"
    with pytest.raises(ParseError):
        parse_via("SIP/2.0/UDP a.example;branch=z9hG4bK1, garbage that would not parse")


@pytest.mark.parametrize(
    "value",
    ["", "SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDP host;;", "SIP/2.0/UDP 192.0.2.15;;,;,,",
     "SIP/2.0/UDP host:port", "SIP/2.0/UDP host;rport=abc", "SIP/2.0/UDP host;rport=70000",
     "SIP/2.0/UDP ho st", "SIP/2.0/U@P host", "SIP/2.0/UDP [::1", "SIP/2.0/UDP host:99999"],
)  # fmt: skip
def test_bad_via(value: str) -> None:
    with pytest.raises(ParseError, match="Malformed Via header"):
        parse_via(value)


def test_via_construction_and_str() -> None:
    via = Via("TCP", "gw.example", 5060, {"branch": "z9hG4bKabc", "rport": None})
    assert str(via) == "SIP/2.0/TCP gw.example:5060;branch=z9hG4bKabc;rport"
    assert via.raw == str(via)
    assert parse_via(str(via)) == [via]


# ------------------------------------------------------------------ CSeq and lists
@pytest.mark.parametrize(
    ("value", "cseq"),
    [("1 INVITE", CSeq(1, "INVITE")), ("0009\t INVITE", CSeq(9, "INVITE")), ("2147483647 BYE", CSeq(2**31 - 1, "BYE")),
     ("29344 RE%47IST%45R", CSeq(29344, "RE%47IST%45R"))],
)  # fmt: skip
def test_parse_cseq(value: str, cseq: CSeq) -> None:
    assert parse_cseq(value) == cseq


@pytest.mark.parametrize("value", ["", "1", "INVITE", "1 INVITE x", "-1 INVITE", "2147483648 INVITE", "1.0 INVITE", "1 INV<TE",
                                   "36893488147419103232 REGISTER", "\u0661 INVITE"])  # fmt: skip
def test_bad_cseq(value: str) -> None:
    with pytest.raises(ParseError, match="Malformed CSeq header"):
        parse_cseq(value)


@pytest.mark.parametrize(
    ("text", "first", "rest"),
    [
        ("<sip:p1;lr>, <sip:p2;lr>,<sip:p3>", "<sip:p1;lr>", "<sip:p2;lr>,<sip:p3>"),
        ("<sip:p1;lr>", "<sip:p1;lr>", ""),
        ('"a,b" <sip:x>, <sip:y>', '"a,b" <sip:x>', "<sip:y>"),
        ("SIP/2.0/UDP a;branch=1 , SIP/2.0/UDP b", "SIP/2.0/UDP a;branch=1", "SIP/2.0/UDP b"),
    ],
)
def test_pop_first_value(text: str, first: str, rest: str) -> None:
    assert pop_first_value(text) == (first, rest)
    assert first_comma_value(text) == first

"""Real-client fixtures and the known parser bugs (shared/notes/sip-peers.md §2.1, §6).

Each ``test_row_NN`` is one row of the §2.1 table: an input that sipmessage
0.7.1 gets wrong, and what a proxy's parser must do with it. The captured
REGISTERs are the second (authenticated) request of baresip, linphonec,
pjsua2 and SIPp as seen on the wire.
"""

from __future__ import annotations

import pytest

from gateway.sip import (
    AbsoluteURI,
    ParseError,
    Request,
    SipURI,
    StreamFramer,
    Via,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    validate_for_proxy,
)
from gateway.sip.digest import parse_challenge, parse_credentials


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def req(*headers: str, start: str = "OPTIONS sip:bob@example.test SIP/2.0", body: str = "") -> bytes:
    base = [
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "From: <sip:a@example.test>;tag=1",
        "To: <sip:b@example.test>",
        "Call-ID: row@test",
        f"CSeq: 1 {start.split(' ', 1)[0]}",
    ]
    lines = [start, *base, *headers, f"Content-Length: {len(body)}", "", body]
    return "\r\n".join(lines).encode()


def request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    validate_for_proxy(msg)
    return msg


# ---------------------------------------------------------------- §6 captured REGISTERs
BARESIP = crlf(
    """REGISTER sip:127.0.0.1:25060;transport=udp SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:25090;branch=z9hG4bK10dcca80b5e249da;rport
Contact: <sip:alice-0x55731a6e1970@127.0.0.1:25090>;expires=60;+sip.instance="<urn:uuid:8a1ba46c-ccd6-bd10-d7bb-edf555474d85>"
Max-Forwards: 70
Authorization: Digest username="alice", realm="example.test", nonce="6b0c24b4.0ffd8f535c05438baa999a03", uri="sip:127.0.0.1:25060;transport=udp", response="4617dea5ba97768e2789f4f79c5561db", cnonce="8278cc87269c3601", qop=auth, nc=00000001
To: <sip:alice@127.0.0.1:25060>
From: <sip:alice@127.0.0.1:25060>;tag=aa1c43509e4924f7
Call-ID: be8676c460d31674
CSeq: 40173 REGISTER
User-Agent: baresip v1.0.0 (x86_64/linux)
Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER
Content-Length: 0

"""
)

LINPHONE = crlf(
    """REGISTER sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:25092;branch=z9hG4bK.XMystReyR;rport
From: "alice" <sip:alice@127.0.0.1>;tag=Xq40afjxP
To: "alice" <sip:alice@127.0.0.1>
CSeq: 21 REGISTER
Call-ID: 0bNU7YYopW
Max-Forwards: 70
Supported: replaces, outbound, gruu
Accept: application/sdp
Accept: text/plain
Accept: application/vnd.gsma.rcs-ft-http+xml
Contact: "alice" <sip:alice@127.0.0.1:25092;transport=udp>;+sip.instance="<urn:uuid:decfbf29-9737-007c-bfe9-a2dc652ccd2b>"
Expires: 60
User-Agent: Linphonec/5.1.65
Authorization:  Digest realm="example.test", nonce="6b0c24b7.4e5f742bdee5acd044caabed", algorithm=MD5, username="alice",  uri="sip:127.0.0.1", response="e9fa6bffbfa3431469ecc2b921af6a37", cnonce="ivzKTemIJ7nB0eop", nc=00000001, qop=auth

"""
)

PJSUA2 = crlf(
    """REGISTER sip:127.0.0.1:25060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:50326;rport;branch=z9hG4bKPjwh1D-fMmH-GhXQEFh1N1-S2aP1tMCSeO
Max-Forwards: 70
From: <sip:alice@127.0.0.1>;tag=WsRons95I87uw42GnjCCUXpeZNzGgeXk
To: <sip:alice@127.0.0.1>
Call-ID: EpVpq8v04-zs5hwqDxfY2ED3Hr2KNtQT
CSeq: 9295 REGISTER
User-Agent: pjsua2-test-client
Contact: <sip:alice@127.0.0.1:50326;ob>
Expires: 300
Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS
Authorization: Digest username="alice", realm="example.test", nonce="6b0c24b0.824d07afe5282efdb57c7774", uri="sip:127.0.0.1:25060", response="62a0fd046f8d67f88960c08a8ae5a4a4", algorithm=MD5, cnonce="Eg2ulhi9H.MuofWcJZcjuH5MXzrW863J", qop=auth, nc=00000001
Content-Length:  0

"""
)

SIPP = crlf(
    """REGISTER sip:127.0.0.1:25060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:25072;branch=z9hG4bK-31845-1-2;rport
From: <sip:bob@127.0.0.1:25060>;tag=31845SIPpTag001
To: <sip:bob@127.0.0.1:25060>
Call-ID: 1-31845@127.0.0.1
CSeq: 2 REGISTER
Contact: <sip:bob@127.0.0.1:25072>
Authorization: Digest username="bob",realm="example.test",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:25060",nonce="6b0c24b4.0ffd8f535c05438baa999a03",response="b39de84aa0d08261ac8a133b74508a20",algorithm=MD5
Max-Forwards: 70
Expires: 60
User-Agent: SIPp-register-test
Content-Length: 0

"""
)

CAPTURED = {"baresip": BARESIP, "linphonec": LINPHONE, "pjsua2": PJSUA2, "sipp": SIPP}


@pytest.mark.parametrize("client", CAPTURED)
def test_captured_register_parses_and_forwards_unchanged(client: str) -> None:
    data = CAPTURED[client]
    msg = request(data)
    assert msg.method == "REGISTER"
    assert msg.cseq.method == "REGISTER"
    assert msg.top_via.rport is True
    assert msg.top_via.branch is not None and msg.top_via.branch.startswith("z9hG4bK")
    assert msg.from_tag is not None
    assert msg.to_tag is None
    assert msg.max_forwards == 70
    assert msg.body == b""
    if msg.content_length is not None:
        assert msg.to_bytes() == data  # byte-exact while untouched
    creds = parse_credentials(msg.get("authorization") or "")
    assert creds.realm == "example.test"
    assert creds.username in ("alice", "bob")


def test_baresip_contact_expires_and_instance() -> None:
    contacts = request(BARESIP).contacts
    assert contacts != "*"
    (c,) = contacts
    assert c.params["expires"] == "60"
    assert c.params["+sip.instance"] == "<urn:uuid:8a1ba46c-ccd6-bd10-d7bb-edf555474d85>"
    assert isinstance(c.uri, SipURI) and c.uri.user == "alice-0x55731a6e1970" and c.uri.port == 25090
    ruri = request(BARESIP).ruri
    assert isinstance(ruri, SipURI) and ruri.params == {"transport": "udp"}


def test_baresip_unregister_expires_zero_found() -> None:
    """The registrar lesson of §3: a naive rsplit('>') misses expires=0."""
    data = BARESIP.replace(b";expires=60;", b";expires=0;")
    contacts = request(data).contacts
    assert contacts != "*"
    assert contacts[0].params["expires"] == "0"


def test_linphonec_quirks() -> None:
    msg = request(LINPHONE)
    assert msg.content_length is None  # no Content-Length over UDP: allowed
    assert (msg.get("authorization") or "").startswith("Digest realm=")
    assert msg.values("accept") == ["application/sdp", "text/plain", "application/vnd.gsma.rcs-ft-http+xml"]
    assert msg.values("supported") == ["replaces", "outbound", "gruu"]
    assert msg.expires == 60
    contacts = msg.contacts
    assert contacts != "*"
    assert contacts[0].display == "alice"
    assert contacts[0].params["+sip.instance"] == "<urn:uuid:decfbf29-9737-007c-bfe9-a2dc652ccd2b>"
    assert msg.from_.display == "alice"
    # forwarded over TCP it must gain a Content-Length
    out = msg.to_bytes()
    assert out.endswith(b"Content-Length: 0\r\n\r\n")
    assert StreamFramer().feed(out) == [out]


def test_pjsua2_ob_and_spacing() -> None:
    msg = request(PJSUA2)
    contacts = msg.contacts
    assert contacts != "*"
    assert contacts[0].uri.params == {"ob": None}  # type: ignore[union-attr]
    assert msg.content_length == 0
    assert msg.values("allow")[:3] == ["PRACK", "INVITE", "ACK"]


def test_sipp_compact_digest() -> None:
    msg = request(SIPP)
    creds = parse_credentials(msg.get("authorization") or "")
    assert creds.nc == 1
    assert creds.uri == "sip:127.0.0.1:25060"


# ---------------------------------------------------------------- §2.1 rows
def test_row_01_folding() -> None:
    msg = request(req("Subject: hello\r\n  world"))
    assert msg.get("subject") == "hello world"


def test_row_02_space_before_colon() -> None:
    msg = request(req("Subject   : x"))
    assert msg.get("subject") == "x"


def test_row_03_quoted_display_names_in_contact_list() -> None:
    contacts = request(req('Contact: "a" <sip:a@b>, "c" <sip:c@d>')).contacts
    assert contacts != "*"
    assert [(c.display, str(c.uri)) for c in contacts] == [("a", "sip:a@b"), ("c", "sip:c@d")]


def test_row_04_linphonec_contact() -> None:
    value = '"alice" <sip:alice@127.0.0.1:25092;transport=udp>;+sip.instance="<urn:uuid:decfbf29-9737-007c-bfe9-a2dc652ccd2b>"'
    na = parse_name_addr(value)
    assert na.display == "alice"
    assert na.params == {"+sip.instance": "<urn:uuid:decfbf29-9737-007c-bfe9-a2dc652ccd2b>"}


def test_row_05_forwarding_keeps_bytes() -> None:
    contact = 'Contact: <sip:a@192.0.2.1>;+sip.instance="<urn:uuid:8a1ba46c-ccd6-bd10-d7bb-edf555474d85>"'
    via = "Via: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK2;received=[2001:db8::1]"
    msg = request(req(via, contact))
    msg.prepend("via", "SIP/2.0/UDP gw.example;branch=z9hG4bKgw")  # forces a rebuild
    out = msg.to_bytes()
    assert contact.encode() in out
    assert via.encode() in out
    assert b"%" not in out
    # the typed values serialise without %-encoding too
    assert str(msg.vias[2]) == "SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK2;received=[2001:db8::1]"
    contacts = msg.contacts
    assert contacts != "*"
    assert str(contacts[0]) == contact.split(": ", 1)[1]


def test_row_06_quoted_commas_in_challenge() -> None:
    value = 'Digest realm="a, b", nonce="n", qop="auth,auth-int", algorithm=MD5'
    msg = parse_message(
        b"SIP/2.0 401 Unauthorized\r\n" + req(f"WWW-Authenticate: {value}").split(b"\r\n", 1)[1]
    )
    assert msg.get("www-authenticate") == value  # kept whole, never split on its commas
    challenge = parse_challenge(value)
    assert challenge.realm == "a, b"
    assert challenge.qop == ("auth", "auth-int")


def test_row_07_unknown_auth_scheme_preserved() -> None:
    value = "NoOneKnowsThisScheme opaque-data=here"
    msg = request(req(f"Authorization: {value}", start="REGISTER sip:example.test SIP/2.0"))
    msg.set("max-forwards", "69")
    assert f"Authorization: {value}\r\n".encode() in msg.to_bytes()


def test_row_08_space_before_comma_in_via_list() -> None:
    vias = parse_via("SIP/2.0/UDP a.example.com;branch=x , SIP/2.0/UDP b.example.com;branch=y")
    assert [(v.host, v.branch) for v in vias] == [("a.example.com", "x"), ("b.example.com", "y")]


def test_row_09_unbracketed_ipv6_received() -> None:
    (via,) = parse_via("SIP/2.0/UDP host.example;branch=z9hG4bK1;received=2001:db8::9:255")
    assert via.received == "2001:db8::9:255"


def test_row_10_lower_case_sent_protocol() -> None:
    (via,) = parse_via("sip/2.0/udp a.example.com;branch=z9hG4bK1")
    assert via.transport == "UDP"
    assert isinstance(via, Via)


def test_row_11_upper_case_scheme() -> None:
    uri = parse_uri("SIP:alice@example.com")
    assert isinstance(uri, SipURI) and uri.scheme == "sip" and uri.user == "alice"


def test_row_12_uri_headers() -> None:
    uri = parse_uri("sip:alice@example.com?subject=hi")
    assert isinstance(uri, SipURI) and uri.headers == "subject=hi"
    refer_to = parse_name_addr("<sip:bob@example.com?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>")
    assert isinstance(refer_to.uri, SipURI)
    assert refer_to.uri.headers == "Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2"


@pytest.mark.parametrize("ruri", ["nobodyKnowsThisScheme:totallyopaquecontent", "soap.beep://192.0.2.103:3002"])
def test_row_13_unknown_request_uri_scheme(ruri: str) -> None:
    msg = request(req(start=f"OPTIONS {ruri} SIP/2.0"))
    assert isinstance(msg.ruri, AbsoluteURI)


def test_row_14_contact_star() -> None:
    msg = request(req("Contact: *", "Expires: 0", start="REGISTER sip:example.test SIP/2.0"))
    assert msg.contacts == "*"
    assert msg.expires == 0


def test_row_15_body_framing() -> None:
    short = req(body="abc").replace(b"Content-Length: 3", b"Content-Length: 50")
    with pytest.raises(ParseError, match="Content-Length exceeds body"):
        parse_message(short)
    long_ = req(body="abc").replace(b"Content-Length: 3", b"Content-Length: 1")
    assert request(long_).body == b"a"


@pytest.mark.parametrize(
    "change",
    [
        (b"Content-Length: 0", b"Content-Length: 9999"),
        (b"Content-Length: 0", b"Content-Length: -999"),
        (b"Content-Length: 0", b"Content-Length: 0\r\nContent-Length: 0"),
        (b"Call-ID: row@test", b"Call-ID: row@test\r\nCall-ID: other@test"),
    ],
)
def test_row_16_framing_and_duplicates_detected(change: tuple[bytes, bytes]) -> None:
    with pytest.raises(ParseError):
        parse_message(req().replace(*change))


def test_row_17_bad_max_forwards_at_parse_time() -> None:
    with pytest.raises(ParseError, match="Malformed Max-Forwards header"):
        parse_message(req("Max-Forwards: abc"))

"""Review findings (security): each test states the behaviour the RFCs / a Kamailio-grade proxy require.

Each test was a finding of the code review (it failed then); they stay as regression tests.
They use the real SipCore on a ManualClock (tests/gwharness.py); nothing is sent on a network:
"foreign" addresses below (192.0.2.0/24, TEST-NET-1) only ever appear in the captured send list.
"""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

import pytest

from gateway.sip.digest import Algorithm, build_credentials, parse_challenge
from gateway.sip.message import Request, Response
from gateway.transport import Peer
from tests.gwharness import DOMAIN, Gateway, Phone, answer_challenge, register, request

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
ATTACKER = Peer("udp", "127.0.0.1", 45999)
FOREIGN_HOST = "192.0.2.10"


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return Gateway(tmp_path)


def _foreign_sends(gw: Gateway) -> list[bytes]:
    return [data for data, to in gw.sent if to.host == FOREIGN_HOST]


def _stranger() -> Phone:
    """Someone with no account at all: not provisioned, not registered."""
    return Phone("stranger", "x", "0", 0, ATTACKER)


# RFC 3261 §16.4 / §16.12 and §26.3.2.2 (open relay): an in-dialog request is only routed by a proxy
# that finds its own Record-Route URI in the top Route (Kamailio: has_totag() && loose_route(), else 404).
# Here any request carrying a To tag is relayed, unauthenticated, to whatever host its Request-URI names.
def test_unauthenticated_request_with_to_tag_is_not_relayed_to_a_foreign_host(gw: Gateway) -> None:
    uri = f"sip:victim@{FOREIGN_HOST}:5060"
    gw.inject(request("INVITE", uri, _stranger(), to=f"<{uri}>", to_tag="forged", call_id="relay1",
                      body=SDP), ATTACKER)
    assert _foreign_sends(gw) == [], "INVITE relayed to an arbitrary host without auth or dialog"


# Same, with a Route naming the foreign host (RFC 3261 §16.4: only *our* Route entries are consumed;
# a Route that does not point at us on a request we hold no dialog for must not be followed blindly).
def test_unauthenticated_request_with_foreign_route_is_not_relayed(gw: Gateway) -> None:
    uri = "sip:anyone@lab.test"
    gw.inject(request("MESSAGE", uri, _stranger(), to=f"<{uri}>", to_tag="forged", call_id="relay2",
                      extra=[f"Route: <sip:{FOREIGN_HOST}:5060;lr>"], body="spam"), ATTACKER)
    assert _foreign_sends(gw) == []


# RFC 3261 §17.1.1.3 / §16.6: a 2xx ACK is forwarded statelessly, but only along a dialog's route set;
# a stray ACK with a foreign Request-URI is a free stateless reflector (64 KiB body per datagram).
def test_stray_ack_is_not_reflected_to_a_foreign_host(gw: Gateway) -> None:
    uri = f"sip:victim@{FOREIGN_HOST}:5060"
    gw.inject(request("ACK", uri, _stranger(), to=f"<{uri}>", to_tag="forged", call_id="relay3",
                      body="x" * 4000), ATTACKER)
    assert _foreign_sends(gw) == []


# Unauthenticated memory growth: a request whose top Route is not a SIP URI makes Proxy._peer_for_uri
# raise ParseError *after* SipCore created the server transaction; on_message answers statelessly and the
# transaction (state Trying/Proceeding, no timer) stays in the table forever (RFC 3261 §17.2: every server
# transaction must reach Terminated).
def test_parse_error_during_routing_does_not_leak_a_server_transaction(gw: Gateway) -> None:
    before = len(gw.core.txns)
    for i in range(50):
        gw.inject(request("INFO", "sip:x@lab.test", _stranger(), to="<sip:x@lab.test>", to_tag="t",
                          call_id=f"leak{i}", extra=["Route: <tel:+15551234>"]), ATTACKER)
    answers = [m for m in gw.take(ATTACKER) if isinstance(m, Response)]
    assert answers and all(m.status >= 400 for m in answers)
    gw.clock.advance(3600)
    assert len(gw.core.txns) == before, f"{len(gw.core.txns) - before} server transactions never end"


# RFC 2617 §3.2.2.5 / RFC 3261 §22.4 / RFC 8760 §3: the server must check that the digest-uri is the
# Request-URI, and must not accept the same credentials twice.  auth.py skips check_nc() when qop is
# absent (RFC 2069 form) and never compares creds.uri with the R-URI, so one sniffed Proxy-Authorization
# places any number of calls to any extension for the nonce lifetime.
def test_rfc2069_credentials_cannot_be_replayed_to_another_target(gw: Gateway) -> None:
    alice, bob, carol = gw.phone("1001"), gw.phone("1002"), gw.phone("1003")
    for p in (alice, bob, carol):
        assert register(gw, p).status == 200
    uri_bob = f"sip:1002@{DOMAIN}"
    gw.inject(request("INVITE", uri_bob, alice, to=f"<{uri_bob}>", call_id="r1", body=SDP), alice.peer)
    challenge = gw.one(alice.peer)
    assert isinstance(challenge, Response) and challenge.status == 407
    chal = parse_challenge(challenge.get("proxy-authenticate") or "")
    chal = dataclasses.replace(chal, qop=())  # the phone answers in RFC 2069 form (no qop, no nc)
    creds = build_credentials(chal, alice.username, alice.password, "INVITE", uri_bob, cnonce="c")
    gw.inject(request("INVITE", uri_bob, alice, to=f"<{uri_bob}>", call_id="r2", cseq=2, body=SDP,
                      extra=[f"Proxy-Authorization: {creds}"]), alice.peer)
    again = gw.one(alice.peer)  # we offered qop=auth: an answer without it is challenged again
    assert isinstance(again, Response) and again.status == 407
    assert gw.take(bob.peer) == []
    # an eavesdropper replays the same header, from elsewhere, to a different extension
    uri_carol = f"sip:1003@{DOMAIN}"
    gw.inject(request("INVITE", uri_carol, alice, to=f"<{uri_carol}>", call_id="r3", cseq=1, body=SDP,
                      extra=[f"Proxy-Authorization: {creds}"]), alice.peer)
    assert gw.take(carol.peer) == [], "replayed credentials (digest-uri != R-URI, no nc) admitted"


# RFC 8760 §2.4/§3: the server offers only the algorithms it is configured for; credentials computed with
# another one must be re-challenged.  auth.py's condition ``alg not in self.algorithms and alg not in
# (MD5, SHA256)`` is always false, so an SHA-256-only gateway still accepts MD5.
def test_md5_is_refused_when_only_sha256_is_configured(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, algorithms=(Algorithm.SHA256,))
    alice = gw.phone("1001")
    uri = f"sip:{DOMAIN}"
    gw.inject(request("REGISTER", uri, alice, call_id="md5", cseq=1, extra=["Expires: 600"]), alice.peer)
    challenge = gw.one(alice.peer)
    assert isinstance(challenge, Response) and challenge.status == 401
    chal = parse_challenge(challenge.get("www-authenticate") or "")
    assert chal.algorithm is Algorithm.SHA256
    md5 = dataclasses.replace(chal, algorithm=Algorithm.MD5)
    creds = build_credentials(md5, alice.username, alice.password, "REGISTER", uri, cnonce="c")
    gw.inject(request("REGISTER", uri, alice, call_id="md5", cseq=2,
                      extra=["Expires: 600", f"Authorization: {creds}"]), alice.peer)
    final = gw.one(alice.peer)
    assert isinstance(final, Response) and final.status != 200, "MD5 accepted by an SHA-256-only server"


# Request amplification: the registrar accepts any number of Contacts per address of record (Kamailio:
# registrar max_contacts), and every INVITE forks to all of them, each branch retransmitted by Timer A.
# One authenticated REGISTER therefore turns each call into N INVITE floods toward the registering host.
def test_contacts_per_address_of_record_are_bounded(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    assert register(gw, alice).status == 200
    contacts = ", ".join(f"<sip:b{i}-{secrets.token_hex(2)}@127.0.0.1:{20000 + i}>" for i in range(200))
    final = register(gw, bob, contact=contacts)
    bound = gw.location.count() - 1
    assert final.status != 200 or bound <= 20, f"{bound} contacts bound for one address of record"


# RFC 3261 §12 (a dialog is Call-ID + both tags) and §16: a BYE from anyone, with any tags, along any
# Route, ends the call record at once (calls.bye runs before forwarding and before any 2xx), so a third
# party -- or the caller itself -- can stop billing while the media keeps flowing.
def test_forged_bye_does_not_end_the_call_record(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    uri = f"sip:1002@{DOMAIN}"
    gw.inject(request("INVITE", uri, alice, to=f"<{uri}>", call_id="bill", cseq=1, body=SDP,
                      branch="z9hG4bKb1"), alice.peer)
    challenge = gw.one(alice.peer)
    assert isinstance(challenge, Response)
    auth = answer_challenge(challenge, alice, "INVITE", uri, "proxy-authenticate")
    gw.inject(request("INVITE", uri, alice, to=f"<{uri}>", call_id="bill", cseq=2, body=SDP,
                      branch="z9hG4bKb2", extra=[f"Proxy-Authorization: {auth}"]), alice.peer)
    leg = gw.one(bob.peer)
    assert isinstance(leg, Request)
    _answer(gw, leg, bob, 200, "OK", tag="bobtag")
    assert gw.core.calls.calls["bill@127.0.0.1"].state == "confirmed"
    # a stranger who learnt the Call-ID sends a BYE with made-up tags toward a black hole
    gw.inject(request("BYE", "sip:nobody@127.0.0.1:9", _stranger(), to=f"<{uri}>", to_tag="made-up",
                      call_id="bill", from_tag="also-made-up"), ATTACKER)
    assert gw.records == [], "call record closed by a BYE that does not belong to the dialog"


def _answer(gw: Gateway, req: Request, phone: Phone, status: int, reason: str, *, tag: str) -> None:
    vias = "\r\n".join(f"Via: {v}" for v in req.values("via"))
    rr = "\r\n".join(f"Record-Route: {v}" for v in req.values("record-route"))
    lines = [f"SIP/2.0 {status} {reason}", vias]
    if rr:
        lines.append(rr)
    lines += [f"From: {req.get('from')}", f"To: {req.get('to')};tag={tag}", f"Call-ID: {req.call_id}",
              f"CSeq: {req.cseq.seq} {req.cseq.method}", f"Contact: <{phone.contact}>",
              "Content-Length: 0", "", ""]
    gw.inject("\r\n".join(lines), phone.peer)

"""Review findings (RFC conformance of the proxy and the call records).

Each test was a finding of the code review (it failed then); they stay as regression tests.  Real SipCore on a
ManualClock (tests/gwharness.py), sends captured, no sockets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sip.message import Request, Response
from gateway.transport import Peer
from tests.gwharness import DOMAIN, Gateway, Phone, answer_challenge, register, request

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return Gateway(tmp_path)


def _call(gw: Gateway, caller: Phone, target: str, call_id: str, method: str = "INVITE") -> None:
    uri = f"sip:{target}@{DOMAIN}"
    body = SDP if method == "INVITE" else "hello"
    gw.inject(request(method, uri, caller, to=f"<{uri}>", call_id=call_id, cseq=1, body=body,
                      branch=f"z9hG4bK1{call_id}"), caller.peer)
    challenge = gw.one(caller.peer)
    assert isinstance(challenge, Response) and challenge.status == 407
    if method == "INVITE":
        gw.inject(request("ACK", uri, caller, to=f"<{uri}>", call_id=call_id, cseq=1,
                          branch=f"z9hG4bK1{call_id}", to_tag=challenge.to_tag), caller.peer)
    auth = answer_challenge(challenge, caller, method, uri, "proxy-authenticate")
    gw.inject(request(method, uri, caller, to=f"<{uri}>", call_id=call_id, cseq=2, body=body,
                      branch=f"z9hG4bK2{call_id}", extra=[f"Proxy-Authorization: {auth}"]), caller.peer)
    gw.take(caller.peer)


def _answer(gw: Gateway, req: Request, phone: Phone, status: int, reason: str, *, tag: str = "callee") -> None:
    vias = "\r\n".join(f"Via: {v}" for v in req.values("via"))
    rr = "\r\n".join(f"Record-Route: {v}" for v in req.values("record-route"))
    lines = [f"SIP/2.0 {status} {reason}", vias]
    if rr:
        lines.append(rr)
    to = req.get("to") if status == 100 else f"{req.get('to')};tag={tag}"
    lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.call_id}",
              f"CSeq: {req.cseq.seq} {req.cseq.method}", f"Contact: <{phone.contact}>",
              "Content-Length: 0", "", ""]
    gw.inject("\r\n".join(lines), phone.peer)


def _finals(msgs: list[Request | Response], method: str = "INVITE") -> list[int]:
    return [m.status for m in msgs if isinstance(m, Response) and m.status >= 200 and m.cseq.method == method]


def _second_contact(gw: Gateway, phone: Phone, port: int) -> Phone:
    other = Phone(phone.username, phone.password, phone.extension, phone.device_id, Peer("udp", "127.0.0.1", port))
    assert register(gw, other).status == 200
    return other


# RFC 3261 §16.6 step 11: Timer C MUST be set for each client transaction when an INVITE is proxied.
# proxy.py only (re)starts it on a 101-199, and the client transaction clears Timer B on the 100, so a
# callee that answers "100 Trying" and then nothing keeps the server transaction, the fork, the client
# transaction and the live call forever, and the caller never gets a final response.
def test_branch_that_only_sent_100_still_ends(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    _call(gw, alice, "1002", "only100")
    leg = gw.one(bob.peer)
    assert isinstance(leg, Request)
    _answer(gw, leg, bob, 100, "Trying")
    for _ in range(40):  # 400 s: Timer C (> 3 min) plus the CANCEL's 64*T1
        gw.clock.advance(10)
        for m in gw.take(bob.peer):  # the callee stays silent to the CANCEL as it did to the INVITE
            assert isinstance(m, Request)
    assert _finals(gw.take(alice.peer)), "caller never got a final response"
    assert gw.core.calls.calls == {}, "the call stays live forever"


# RFC 3261 §16.7 step 5: a 6xx is "not immediately forwarded"; pending branches are CANCELled and the
# best response is chosen once they are all final -- and any 2xx must reach the caller (step 5, or
# statelessly per step 10).  proxy.py answers the 6xx at once; a 2xx that crossed the CANCEL then hits the
# Completed server transaction, which drops it: the callee is connected to nobody.
def test_2xx_after_6xx_on_another_branch_reaches_the_caller(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    desk = _second_contact(gw, bob, 47010)
    _call(gw, alice, "1002", "six")
    leg1, leg2 = gw.one(bob.peer), gw.one(desk.peer)
    assert isinstance(leg1, Request) and isinstance(leg2, Request)
    _answer(gw, leg2, desk, 180, "Ringing", tag="desk")
    _answer(gw, leg1, bob, 603, "Decline", tag="mobile")
    _answer(gw, leg2, desk, 200, "OK", tag="desk")  # crossed our CANCEL on the wire
    assert 200 in _finals(gw.take(alice.peer)), "2xx from a forked branch was swallowed"


# RFC 3261 §12.1 / §16.7 step 5: two branches may both answer 2xx; both go upstream, creating two dialogs
# with the same Call-ID.  The caller keeps one and BYEs the other at once (§13.2.2.4).  calls.py keys the
# live call by Call-ID only, so that BYE ends the record of the call that is still up (duration ~0).
def test_bye_of_the_discarded_fork_does_not_end_the_kept_call(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    desk = _second_contact(gw, bob, 47020)
    _call(gw, alice, "1002", "two2xx")
    leg1, leg2 = gw.one(bob.peer), gw.one(desk.peer)
    assert isinstance(leg1, Request) and isinstance(leg2, Request)
    _answer(gw, leg1, bob, 200, "OK", tag="mobile")
    _answer(gw, leg2, desk, 200, "OK", tag="desk")
    oks = [m for m in gw.take(alice.peer) if isinstance(m, Response) and m.status == 200]
    assert len(oks) == 2
    route = oks[0].values("record-route")[0]
    gw.inject(request("BYE", desk.contact, alice, to=f"<sip:1002@{DOMAIN}>", to_tag="desk",
                      call_id="two2xx", cseq=3, extra=[f"Route: {route}"]), alice.peer)
    gw.clock.advance(60)
    gw.inject(request("BYE", bob.contact, alice, to=f"<sip:1002@{DOMAIN}>", to_tag="mobile",
                      call_id="two2xx", cseq=4, extra=[f"Route: {route}"]), alice.peer)
    assert [(r["disposition"], r["duration_s"]) for r in gw.records] == [("answered", 60.0)]


# Unbounded memory / lost record: nothing ever ends a confirmed call whose BYE never crosses the proxy
# (phone crashed, BYE lost, UA that ignores Record-Route).  Kamailio's dialog module has a default
# timeout; here CallTracker.calls grows forever and the record only appears at a clean shutdown.
def test_confirmed_call_without_bye_is_eventually_closed(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    _call(gw, alice, "1002", "forever")
    leg = gw.one(bob.peer)
    assert isinstance(leg, Request)
    _answer(gw, leg, bob, 200, "OK")
    gw.clock.advance(7 * 24 * 3600)
    assert gw.core.calls.calls == {} and len(gw.records) == 1


# RFC 4320 §4.2: "A transaction-stateful SIP element MUST NOT send a response with Status-Code of 408 to
# a non-INVITE request."  (By the time Timer F fires here the upstream client has timed out anyway.)
def test_no_408_to_a_non_invite_request(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    _call(gw, alice, "1002", "msg", method="MESSAGE")
    assert gw.take(bob.peer)
    gw.clock.advance(40)
    assert 408 not in _finals(gw.take(alice.peer), "MESSAGE")


# RFC 3261 §16.4: "If the Request-URI contains a value this proxy previously placed into a Record-Route
# header field, the proxy MUST replace the Request-URI in the request with the last value from the Route
# header field, and remove that value from the Route header field."  (A strict router upstream.)
def test_request_from_a_strict_router_gets_its_request_uri_restored(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    data = request("BYE", "sip:127.0.0.1:5060;lr", alice, to=f"<sip:1002@{DOMAIN}>", to_tag="t",
                   call_id="strict", extra=[f"Route: <{bob.contact}>"])
    gw.inject(data, alice.peer)
    fwd = gw.one(bob.peer)
    assert isinstance(fwd, Request)
    assert fwd.uri == bob.contact and fwd.get("route") is None


# Call-record disposition: when Timer C (RFC 3261 §16.6 step 11) gives up on a ringing callee, nobody
# answered -- the record must say "no-answer".  proxy._timer_c CANCELs without telling CallTracker, the
# callee's 487 is then mapped to "cancelled" (calls.disposition_for), as if the caller had hung up.
def test_timer_c_expiry_is_recorded_as_no_answer(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    _call(gw, alice, "1002", "tcrec")
    leg = gw.one(bob.peer)
    assert isinstance(leg, Request)
    _answer(gw, leg, bob, 180, "Ringing")
    gw.clock.advance(181)
    cancel = next(m for m in gw.take(bob.peer) if isinstance(m, Request) and m.method == "CANCEL")
    _answer(gw, cancel, bob, 200, "OK")
    _answer(gw, leg, bob, 487, "Request Terminated")
    assert [r["disposition"] for r in gw.records] == ["no-answer"]

"""Proxy behaviour through the real SipCore: auth, forking, CANCEL, routing, call records."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sip.message import Request, Response
from gateway.transport import Peer
from tests.gwharness import DOMAIN, SDP, Gateway, Phone, answer, answer_challenge, register, request


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return Gateway(tmp_path)


def invite(gw: Gateway, caller: Phone, target: str, call_id: str, *, extra: list[str] | None = None) -> Response:
    """INVITE → 407 → ACK → INVITE with credentials; returns the first response to the second INVITE."""
    uri = f"sip:{target}@{DOMAIN}"
    to = f"<{uri}>"
    gw.inject(request("INVITE", uri, caller, to=to, call_id=call_id, cseq=1, body=SDP,
                      branch="z9hG4bKinv1" + call_id, extra=extra), caller.peer)
    challenge = gw.one(caller.peer)
    assert isinstance(challenge, Response) and challenge.status == 407
    gw.inject(request("ACK", uri, caller, to=to, call_id=call_id, cseq=1, branch="z9hG4bKinv1" + call_id,
                      to_tag=challenge.to_tag), caller.peer)
    assert gw.take() == []  # the ACK for the (stateless) 407 goes nowhere: no Route of ours, absorbed
    auth = answer_challenge(challenge, caller, "INVITE", uri, "proxy-authenticate")
    gw.inject(request("INVITE", uri, caller, to=to, call_id=call_id, cseq=2, body=SDP,
                      branch="z9hG4bKinv2" + call_id, extra=[*(extra or []), f"Proxy-Authorization: {auth}"]),
              caller.peer)
    msgs = gw.take(caller.peer)
    assert msgs, "no answer to the authenticated INVITE"
    first = msgs[0]
    assert isinstance(first, Response)
    return first


def reply(gw: Gateway, req: Request, phone: Phone, status: int, reason: str, *, tag: str = "callee1",
          body: str = "") -> None:
    gw.inject(answer(req, phone, status, reason, tag=tag, body=body), phone.peer)


def test_the_407_challenge_keeps_no_transaction_and_its_retransmission_is_challenged_again(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    assert register(gw, bob).status == 200
    held = len(gw.core.txns)  # bob's REGISTER transaction (Timer J)
    uri = f"sip:1002@{DOMAIN}"
    data = request("INVITE", uri, alice, to=f"<{uri}>", call_id="ch1", cseq=1, body=SDP, branch="z9hG4bKch1")
    gw.inject(data, alice.peer)
    gw.inject(data, alice.peer)  # a retransmission (the first 407 was lost)
    first, second = gw.take(alice.peer)
    assert isinstance(first, Response) and isinstance(second, Response)
    assert first.status == second.status == 407 and first.to_tag == second.to_tag
    assert len(gw.core.txns) == held
    gw.inject(request("ACK", uri, alice, to=f"<{uri}>", call_id="ch1", cseq=1, branch="z9hG4bKch1",
                      to_tag=first.to_tag), alice.peer)
    assert gw.take() == [] and len(gw.core.txns) == held  # absorbed, not relayed toward bob
    # either challenge may be answered
    assert invite(gw, alice, "1002", "ch2").status == 100


def test_call_forks_to_every_contact_first_2xx_wins_and_others_are_cancelled(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    assert register(gw, alice).status == 200
    assert register(gw, bob).status == 200
    bob_desk = Phone(bob.username, bob.password, "1002", bob.device_id, Peer("udp", "127.0.0.1", 47000))
    assert register(gw, bob_desk).status == 200  # second contact, same address of record

    trying = invite(gw, alice, "1002", "fork1")
    assert trying.status == 100
    leg1, leg2 = gw.one(bob.peer), gw.one(bob_desk.peer)
    assert isinstance(leg1, Request) and isinstance(leg2, Request)
    assert leg1.uri == bob.contact and leg2.uri == bob_desk.contact
    assert leg1.max_forwards == 69
    assert leg1.get("proxy-authorization") is None  # our credentials are consumed
    assert leg1.top_via.branch != leg2.top_via.branch
    assert "lr" in leg1.values("record-route")[0]

    reply(gw, leg1, bob, 180, "Ringing")
    reply(gw, leg2, bob_desk, 180, "Ringing", tag="desk")
    ringing = gw.take(alice.peer)
    assert [m.status for m in ringing if isinstance(m, Response)] == [180, 180]
    assert gw.core.calls.calls["fork1@127.0.0.1"].state == "ringing"

    reply(gw, leg1, bob, 200, "OK", body=SDP)
    ok = gw.one(alice.peer)
    assert isinstance(ok, Response) and ok.status == 200 and ok.body == SDP.encode()
    assert ok.top_via.branch == "z9hG4bKinv2fork1"  # our Via was stripped
    cancel = gw.one(bob_desk.peer)
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.top_via.branch == leg2.top_via.branch
    assert "Call completed elsewhere" in (cancel.get("reason") or "")
    assert gw.core.calls.calls["fork1@127.0.0.1"].state == "confirmed"

    # the call ends after 42 seconds with a BYE routed along the Record-Route
    gw.clock.advance(42)
    route = ok.values("record-route")[0]
    bye = request("BYE", bob.contact, alice, to=f"<sip:1002@{DOMAIN}>", to_tag="callee1", call_id="fork1",
                  cseq=3, extra=[f"Route: {route}"])
    gw.inject(bye, alice.peer)
    fwd_bye = gw.one(bob.peer)
    assert isinstance(fwd_bye, Request) and fwd_bye.method == "BYE" and fwd_bye.get("route") is None
    reply(gw, fwd_bye, bob, 200, "OK")
    bye_ok = gw.one(alice.peer)
    assert isinstance(bye_ok, Response) and bye_ok.status == 200 and bye_ok.cseq.method == "BYE"

    [record] = gw.records
    assert record["disposition"] == "answered"
    assert record["duration_s"] == 42.0
    assert record["caller"] == alice.username and record["callee"] == "1002"
    assert record["account_id"] == gw.account_id


def test_unknown_extension_is_404_and_known_unregistered_is_480(gw: Gateway) -> None:
    alice = gw.phone("1001")
    gw.phone("1002")
    assert register(gw, alice).status == 200
    assert invite(gw, alice, "4040", "c404").status == 404
    assert invite(gw, alice, "1002", "c480").status == 480
    dispositions = sorted((r["sip_code"], r["disposition"]) for r in gw.records)
    assert dispositions == [(404, "rejected"), (480, "no-answer")]


def test_unauthenticated_invite_is_challenged_with_407(gw: Gateway) -> None:
    alice = gw.phone("1001")
    uri = f"sip:1002@{DOMAIN}"
    gw.inject(request("INVITE", uri, alice, to=f"<{uri}>", body=SDP), alice.peer)
    resp = gw.one(alice.peer)
    assert isinstance(resp, Response) and resp.status == 407 and resp.get("proxy-authenticate")
    assert gw.records == []  # a challenge is not a call attempt


def test_caller_on_a_non_activated_device_is_refused_with_r12(gw: Gateway) -> None:
    carol = gw.phone("1003", activate=False)
    resp = invite(gw, carol, "1001", "r12")
    assert resp.status == 403 and "R12" in resp.reason
    [record] = gw.records
    assert record["rule_id"] == "R12"


def test_busy_callee(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    invite(gw, alice, "1002", "busy")
    leg = gw.one(bob.peer)
    assert isinstance(leg, Request)
    reply(gw, leg, bob, 486, "Busy Here")
    resp = gw.one(alice.peer)
    assert isinstance(resp, Response) and resp.status == 486
    ack = gw.one(bob.peer)  # the proxy's client transaction ACKs the 486 hop by hop
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert [r["disposition"] for r in gw.records] == ["busy"]


def test_cancel_before_answer(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    invite(gw, alice, "1002", "cx")
    leg = gw.one(bob.peer)
    assert isinstance(leg, Request)
    reply(gw, leg, bob, 180, "Ringing")
    gw.take(alice.peer)
    uri = f"sip:1002@{DOMAIN}"
    gw.inject(request("CANCEL", uri, alice, to=f"<{uri}>", call_id="cx", cseq=2, branch="z9hG4bKinv2cx"),
              alice.peer)
    cancel_ok = gw.one(alice.peer)
    assert isinstance(cancel_ok, Response) and cancel_ok.status == 200 and cancel_ok.cseq.method == "CANCEL"
    fwd_cancel = gw.one(bob.peer)
    assert isinstance(fwd_cancel, Request) and fwd_cancel.method == "CANCEL"
    reply(gw, fwd_cancel, bob, 200, "OK")
    reply(gw, leg, bob, 487, "Request Terminated")
    terminated = gw.one(alice.peer)
    assert isinstance(terminated, Response) and terminated.status == 487
    assert [r["disposition"] for r in gw.records] == ["cancelled"]


def test_max_forwards_zero_is_483(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    uri = f"sip:1002@{DOMAIN}"
    data = request("MESSAGE", uri, alice, to=f"<{uri}>").replace("Max-Forwards: 70", "Max-Forwards: 0")
    gw.inject(data, alice.peer)
    resp = gw.one(alice.peer)
    assert isinstance(resp, Response) and resp.status == 483


def test_options_to_the_gateway_is_answered(gw: Gateway) -> None:
    alice = gw.phone("1001")
    gw.inject(request("OPTIONS", "sip:127.0.0.1:5060", alice, to="<sip:127.0.0.1:5060>"), alice.peer)
    resp = gw.one(alice.peer)
    assert isinstance(resp, Response) and resp.status == 200 and "INVITE" in (resp.get("allow") or "")


def test_unsupported_uri_scheme_is_416(gw: Gateway) -> None:
    alice = gw.phone("1001")
    gw.inject(request("OPTIONS", "nobodyKnowsThisScheme:totallyopaque", alice), alice.peer)
    resp = gw.one(alice.peer)
    assert isinstance(resp, Response) and resp.status == 416


def test_retransmitted_invite_is_forwarded_once(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    invite(gw, alice, "1002", "rt")
    assert len(gw.take(bob.peer)) == 1
    # the phone resends its authenticated INVITE (same branch): absorbed, 100 resent
    uri = f"sip:1002@{DOMAIN}"
    gw.inject(request("INVITE", uri, alice, to=f"<{uri}>", call_id="rt", cseq=2, body=SDP,
                      branch="z9hG4bKinv2rt"), alice.peer)
    assert gw.take(bob.peer) == []
    resent = gw.take(alice.peer)
    assert [m.status for m in resent if isinstance(m, Response)] == [100]


def test_no_answer_times_out_with_408_on_the_clock(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    invite(gw, alice, "1002", "silent")
    gw.clock.advance(40)  # Timer B (64*T1 = 32 s): the callee never answered at all
    sent = gw.take(bob.peer)
    assert all(isinstance(m, Request) and m.method == "INVITE" for m in sent) and len(sent) >= 5
    final = [m for m in gw.take(alice.peer) if isinstance(m, Response) and m.status >= 200]
    assert final and final[0].status == 408
    assert [r["disposition"] for r in gw.records] == ["no-answer"]


def test_malformed_request_gets_400_with_reason(gw: Gateway) -> None:
    alice = gw.phone("1001")
    bad = request("OPTIONS", "sip:127.0.0.1", alice).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
    gw.inject(bad, alice.peer)
    resp = gw.one(alice.peer)
    assert isinstance(resp, Response) and resp.status == 400
    assert "CSeq" in resp.reason, resp.reason


def test_ringing_forever_is_cancelled_by_timer_c(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    invite(gw, alice, "1002", "tc")
    leg = gw.one(bob.peer)
    assert isinstance(leg, Request)
    reply(gw, leg, bob, 180, "Ringing")
    gw.take(alice.peer)
    gw.clock.advance(179)
    assert gw.take(bob.peer) == []
    gw.clock.advance(2)
    cancels = gw.take(bob.peer)  # the CANCEL, and its retransmission half a second later
    cancel = cancels[0]
    assert all(isinstance(m, Request) and m.method == "CANCEL" for m in cancels)
    assert isinstance(cancel, Request) and "Timer C" in (cancel.get("reason") or "")
    reply(gw, cancel, bob, 200, "OK")
    reply(gw, leg, bob, 487, "Request Terminated")
    final = gw.one(alice.peer)
    assert isinstance(final, Response) and final.status == 408  # nobody answered (Kamailio does the same)
    assert [r["disposition"] for r in gw.records] == ["no-answer"]


def test_cancelled_branch_that_never_answers_still_ends(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    invite(gw, alice, "1002", "deaf")
    leg = gw.one(bob.peer)
    assert isinstance(leg, Request)
    reply(gw, leg, bob, 180, "Ringing")
    gw.take(alice.peer)
    uri = f"sip:1002@{DOMAIN}"
    gw.inject(request("CANCEL", uri, alice, to=f"<{uri}>", call_id="deaf", cseq=2, branch="z9hG4bKinv2deaf"),
              alice.peer)
    gw.take(alice.peer)
    gw.clock.advance(40)  # the callee ignores the CANCEL: the branch gives up after 64*T1
    finals = [m for m in gw.take(alice.peer) if isinstance(m, Response) and m.cseq.method == "INVITE"]
    assert finals and {m.status for m in finals} == {487}  # retransmitted until the caller ACKs
    assert [r["disposition"] for r in gw.records] == ["cancelled"]
    assert len(gw.core.txns) <= 2  # only transactions still in their wait states remain


def test_in_dialog_request_without_our_route_is_not_relayed(gw: Gateway) -> None:
    alice = gw.phone("1001")
    # a BYE with a To tag for a dialog we never record-routed, aimed at a foreign host
    gw.inject(request("BYE", "sip:victim@198.51.100.7:5060", alice, to="<sip:victim@198.51.100.7>",
                      to_tag="x1", call_id="relay"), alice.peer)
    resp = gw.one(alice.peer)
    assert isinstance(resp, Response) and resp.status == 404
    assert gw.sent == []  # nothing went anywhere else


def test_a_refusal_names_its_rule_in_the_record_too(gw: Gateway) -> None:
    from sqlmodel import Session

    from provisioning.services.account_e911 import suspend_account

    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    with Session(gw.engine) as s:
        suspend_account(gw._env(s), gw.account_id, "unpaid")
    resp = invite(gw, alice, "1002", "susp")
    assert resp.status == 403 and resp.reason.endswith("(R11)")
    assert gw.records[-1]["rule_id"] == "R11"

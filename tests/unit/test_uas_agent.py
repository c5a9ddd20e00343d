"""The generic built-in UAS (gateway/uas/agent.py) on a manual clock, with captured sends:
each decision, 2xx retransmission until the ACK, CANCEL races, our BYE along the route set."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from gateway.clock import ManualClock
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message
from gateway.sip.transaction import Timers
from gateway.sip.uri import parse_name_addr
from gateway.uas import Answer, Decision, Reject, Ring, UasCall, UserAgentServer
from gateway.uas.agent import MIN_SE

SOURCE = ("127.0.0.1", 5999)  # where datagrams come from (the gateway's socket)
ROUTE_HOP = ("127.0.0.7", 5080)  # the gateway's Record-Route address: our BYE must go there
CONTACT = "sip:alice@127.0.0.1:5062"
OFFER = (b"v=0\r\no=alice 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n")
HOLD = OFFER.replace(b"a=sendrecv", b"a=sendonly")
TIMERS = Timers()


@dataclass
class Rig:
    clock: ManualClock
    agent: UserAgentServer
    decisions: list[Decision]
    sent: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    changes: list[tuple[int, str]] = field(default_factory=list)

    def deliver(self, msg: Request | Response | bytes, peer: tuple[str, int] = SOURCE) -> None:
        self.agent.on_datagram(msg if isinstance(msg, bytes) else msg.to_bytes(), peer)

    def take(self) -> list[tuple[Request | Response, tuple[str, int]]]:
        out = [(parse_message(data), peer) for data, peer in self.sent]
        self.sent.clear()
        return out

    def responses(self) -> list[Response]:
        out = []
        for msg, peer in self.take():
            assert isinstance(msg, Response) and peer == SOURCE, (msg, peer)
            out.append(msg)
        return out

    def statuses(self) -> list[int]:
        return [r.status for r in self.responses()]


def make_rig(*decisions: Decision, **options: object) -> Rig:
    clock = ManualClock()
    queue = list(decisions)
    rig_holder: list[Rig] = []

    def decide(req: Request, peer: tuple[str, int]) -> Decision:
        return queue.pop(0)

    def on_change(call: UasCall) -> None:
        rig_holder[0].changes.append((call.id, call.state))

    sent: list[tuple[bytes, tuple[str, int]]] = []
    agent = UserAgentServer(clock=clock, send=lambda data, peer: sent.append((data, peer)), host="127.0.0.1",
                            port=5090, media_port=5092, decide=decide, user="pstn", timers=TIMERS,
                            on_change=on_change, **options)  # type: ignore[arg-type]
    rig = Rig(clock, agent, queue, sent)
    rig_holder.append(rig)
    return rig


def invite(*, call_id: str | None = None, rr: list[str] | None = None, body: bytes | None = OFFER,
           extra: Sequence[tuple[str, str]] = (), cseq: int = 1, branch: str | None = None) -> Request:
    call_id = call_id or secrets.token_hex(6)
    headers = [
        ["via", "Via", f"SIP/2.0/UDP {SOURCE[0]}:{SOURCE[1]};branch={branch or 'z9hG4bK' + secrets.token_hex(6)}"],
        ["max-forwards", "Max-Forwards", "69"],
        ["from", "From", '"Alice" <sip:alice@lab.example>;tag=a1'],
        ["to", "To", "<sip:+14155550100@127.0.0.1:5090>"],
        ["call-id", "Call-ID", call_id],
        ["cseq", "CSeq", f"{cseq} INVITE"],
        ["contact", "Contact", f"<{CONTACT}>"],
    ]
    for value in rr if rr is not None else [f"<sip:{ROUTE_HOP[0]}:{ROUTE_HOP[1]};lr>", "<sip:10.9.9.9;lr>"]:
        headers.append(["record-route", "Record-Route", value])
    headers += [[n.lower(), n, v] for n, v in extra]
    req = Request("INVITE", "sip:+14155550100@127.0.0.1:5090", headers)
    if body is not None:
        req.set("content-type", "application/sdp")
        req.body = body
    return req


def in_dialog(method: str, req: Request, resp: Response, cseq: int, *, body: bytes = b"",
              extra: str = "", from_tag: str = "a1") -> bytes:
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (f"{method} {resp.values('contact')[0].strip('<>')} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {SOURCE[0]}:{SOURCE[1]};branch=z9hG4bK{method.lower()}{cseq}\r\n"
            f'From: "Alice" <sip:alice@lab.example>;tag={from_tag}\r\nTo: {resp.get("to")}\r\n'
            f"Call-ID: {req.call_id}\r\nCSeq: {cseq} {method}\r\n{extra}{ctype}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def ack(req: Request, resp: Response, cseq: int | None = None) -> bytes:
    return in_dialog("ACK", req, resp, cseq if cseq is not None else req.cseq.seq)


def cancel(req: Request) -> bytes:
    return (f"CANCEL {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
            f"To: {req.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: {req.cseq.seq} CANCEL\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def reply_to(req: Request, status: int = 200) -> bytes:
    return (f"SIP/2.0 {status} OK\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\nTo: {req.get('to')}\r\n"
            f"Call-ID: {req.call_id}\r\nCSeq: {req.cseq.seq} {req.method}\r\nContent-Length: 0\r\n\r\n").encode()


def answered(rig: Rig, req: Request) -> Response:
    """Deliver `req`, check 100 + 200, send the ACK; the 200."""
    rig.deliver(req)
    trying, ok = rig.responses()
    assert (trying.status, ok.status) == (100, 200)
    rig.deliver(ack(req, ok))
    return ok


def sent_requests(rig: Rig) -> list[tuple[Request, tuple[str, int]]]:
    out = []
    for msg, peer in rig.take():
        assert isinstance(msg, Request), msg
        out.append((msg, peer))
    return out


# --- decisions -----------------------------------------------------------------------------------

def test_answer_now_copies_the_route_set_and_points_sdp_at_the_media_port() -> None:
    rig = make_rig(Answer())
    req = invite()
    rig.deliver(req)
    trying, ok = rig.responses()
    assert trying.status == 100 and trying.to_tag is None
    assert ok.status == 200 and ok.to_tag and ok.to_tag.startswith("pstn")
    assert ok.get_all("record-route") == req.get_all("record-route")  # §12.1.1: copied as received
    assert ok.values("contact") == ["<sip:pstn@127.0.0.1:5090>"]
    assert ok.get("content-type") == "application/sdp"
    assert b"m=audio 5092 RTP/AVP 8 101\r\n" in ok.body  # the offerer's first codec, its DTMF events
    assert b"c=IN IP4 127.0.0.1" in ok.body and b"a=sendrecv" in ok.body
    (call,) = rig.agent.calls()
    assert (call.state, call.status, call.call_id) == ("answered", 200, req.call_id)
    rig.deliver(ack(req, ok))
    assert call.state == "confirmed"
    assert rig.changes == [(call.id, "answered"), (call.id, "confirmed")]


def test_2xx_is_retransmitted_doubling_to_t2_until_the_ack() -> None:
    rig = make_rig(Answer())
    req = invite()
    rig.deliver(req)
    ok = rig.responses()[1]
    sent_at: list[float] = []
    step = TIMERS.t1 / 4
    while rig.clock.now() < 20:
        rig.clock.advance(step)
        for resp in rig.responses():
            assert resp.status == 200 and resp.to_bytes() == ok.to_bytes()
            sent_at.append(rig.clock.now())
    expected, t, interval = [], 0.0, TIMERS.t1
    while t + interval <= 20:
        t += interval
        expected.append(t)
        interval = min(interval * 2, TIMERS.t2)
    assert sent_at == pytest.approx(expected)
    rig.deliver(ack(req, ok))
    rig.clock.advance(30)
    assert rig.take() == []


def test_no_ack_within_64_t1_ends_the_call_with_a_bye() -> None:
    rig = make_rig(Answer())
    req = invite()
    rig.deliver(req)
    rig.take()
    rig.clock.advance(64 * TIMERS.t1 + 0.1)
    msgs = rig.take()
    retransmitted = [m for m, _ in msgs if isinstance(m, Response)]
    byes = [(m, p) for m, p in msgs if isinstance(m, Request)]
    assert retransmitted and {r.status for r in retransmitted} == {200}
    assert len(byes) == 1 and byes[0][0].method == "BYE" and byes[0][1] == ROUTE_HOP
    assert not rig.agent.calls() and not rig.agent.dialogs
    assert rig.changes[-1][1] == "no_ack"


def test_ring_then_answer() -> None:
    rig = make_rig(Answer(ring=3))
    req = invite()
    rig.deliver(req)
    trying, ringing = rig.responses()
    assert (trying.status, ringing.status) == (100, 180)
    assert ringing.to_tag and ringing.values("contact") == ["<sip:pstn@127.0.0.1:5090>"]
    assert ringing.get_all("record-route") == req.get_all("record-route")
    assert rig.agent.calls()[0].state == "ringing"
    rig.clock.advance(2.9)
    assert rig.take() == []
    rig.clock.advance(0.1)
    (ok,) = rig.responses()
    assert ok.status == 200 and ok.to_tag == ringing.to_tag


def test_reject_now_is_retransmitted_until_acked() -> None:
    rig = make_rig(Reject(486, "Busy Here"))
    req = invite()
    rig.deliver(req)
    trying, busy = rig.responses()
    assert (trying.status, busy.status, busy.reason) == (100, 486, "Busy Here") and busy.to_tag
    rig.clock.advance(TIMERS.t1)
    assert rig.statuses() == [486]  # Timer G
    rig.deliver((f"ACK {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
                 f"To: {busy.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 1 ACK\r\n\r\n").encode())
    rig.clock.advance(10)
    assert rig.take() == [] and not rig.agent.calls()
    assert rig.changes == [(1, "rejected")]


def test_ring_then_reject() -> None:
    rig = make_rig(Reject(480, "Temporarily Unavailable", ring=30))
    req = invite()
    rig.deliver(req)
    assert rig.statuses() == [100, 180]
    rig.clock.advance(29.9)
    assert rig.take() == []
    rig.clock.advance(0.1)
    (final,) = rig.responses()
    assert (final.status, final.reason) == (480, "Temporarily Unavailable")
    assert rig.changes == [(1, "ringing"), (1, "rejected")]


def test_ring_forever_refreshes_180_every_minute_until_cancelled() -> None:
    rig = make_rig(Ring())
    req = invite()
    rig.deliver(req)
    assert rig.statuses() == [100, 180]
    rig.clock.advance(59)
    assert rig.take() == []
    rig.clock.advance(1)
    assert rig.statuses() == [180]  # RFC 3261 §13.3.1.1 against a proxy's Timer C
    rig.clock.advance(3600)
    assert set(rig.statuses()) == {180}
    rig.deliver(cancel(req))
    ok, terminated = rig.responses()
    assert (ok.status, ok.cseq.method, terminated.status, terminated.cseq.method) == (200, "CANCEL", 487, "INVITE")
    assert rig.changes[-1] == (1, "cancelled") and not rig.agent.calls()
    rig.clock.advance(120)
    assert 180 not in rig.statuses()


def test_cancel_while_ringing_wins_over_the_answer_timer_due_at_the_same_instant() -> None:
    rig = make_rig(Answer(ring=5))
    req = invite()
    rig.deliver(req)
    ringing = rig.responses()[1]
    rig.clock.advance(4.999)
    rig.deliver(cancel(req))
    ok, terminated = rig.responses()
    assert (ok.status, terminated.status, terminated.to_tag) == (200, 487, ringing.to_tag)
    rig.clock.advance(10)
    assert 200 not in rig.statuses()
    assert not rig.agent.dialogs


def test_cancel_after_the_answer_changes_nothing() -> None:
    rig = make_rig(Answer(ring=5))
    req = invite()
    rig.deliver(req)
    rig.take()
    rig.clock.advance(5)
    assert rig.statuses() == [200]
    rig.deliver(cancel(req))
    assert rig.statuses() == [200]  # to the CANCEL only (RFC 3261 §9.2)
    (call,) = rig.agent.calls()
    assert call.state == "answered"


def test_cancel_for_nothing_gets_481() -> None:
    rig = make_rig()
    rig.deliver(cancel(invite()))
    assert rig.statuses() == [481]


def test_retransmitted_invite_is_absorbed_not_decided_again() -> None:
    rig = make_rig(Answer(ring=2))  # one decision only: a second decide() would fail the pop
    req = invite()
    rig.deliver(req)
    rig.take()
    rig.deliver(req)
    assert rig.statuses() == [180]  # the last provisional, re-sent by the transaction
    assert len(rig.agent.calls()) == 1


# --- in the dialog --------------------------------------------------------------------------------

def test_bye_from_the_caller_ends_the_call() -> None:
    rig = make_rig(Answer())
    req = invite()
    ok = answered(rig, req)
    rig.deliver(in_dialog("BYE", req, ok, 2, from_tag="someone-else"))
    assert rig.statuses() == [481]  # the remote tag is part of the dialog id
    rig.deliver(in_dialog("BYE", req, ok, 3))
    assert rig.statuses() == [200]
    assert rig.changes[-1] == (1, "ended") and not rig.agent.dialogs
    rig.deliver(in_dialog("BYE", req, ok, 4))
    assert rig.statuses() == [481]


def test_reinvite_and_update_get_the_same_answer_and_hold_gets_a_new_version() -> None:
    rig = make_rig(Answer())
    req = invite()
    ok = answered(rig, req)
    rig.deliver(in_dialog("INVITE", req, ok, 2, body=OFFER))
    (re_ok,) = rig.responses()
    assert re_ok.status == 200 and re_ok.body == ok.body and re_ok.to_tag == ok.to_tag
    rig.deliver(ack(req, re_ok, 2))
    rig.deliver(in_dialog("UPDATE", req, ok, 3, body=OFFER, extra="Contact: <sip:alice@127.0.0.1:5064>\r\n"))
    (up_ok,) = rig.responses()
    assert up_ok.status == 200 and up_ok.body == ok.body
    rig.deliver(in_dialog("INVITE", req, ok, 4, body=HOLD))
    (hold_ok,) = rig.responses()
    assert b"a=recvonly" in hold_ok.body and b"a=sendrecv" not in hold_ok.body
    first_o = next(line for line in ok.body.split(b"\r\n") if line.startswith(b"o="))
    hold_o = next(line for line in hold_ok.body.split(b"\r\n") if line.startswith(b"o="))
    assert int(hold_o.split()[2]) == int(first_o.split()[2]) + 1  # RFC 3264 §8: changed, so versioned
    rig.deliver(ack(req, hold_ok, 4))
    rig.deliver(in_dialog("UPDATE", req, ok, 5))
    (bare,) = rig.responses()
    assert bare.status == 200 and bare.body == b""  # no offer, no answer
    rig.agent.hang_up(1)
    ((bye, _),) = sent_requests(rig)
    assert bye.uri == "sip:alice@127.0.0.1:5064"  # the UPDATE's Contact refreshed the target


def test_reinvite_2xx_is_retransmitted_until_its_ack() -> None:
    rig = make_rig(Answer())
    req = invite()
    ok = answered(rig, req)
    rig.deliver(in_dialog("INVITE", req, ok, 2))
    (re_ok,) = rig.responses()
    assert re_ok.body == ok.body  # offerless re-INVITE: our SDP again as the offer
    rig.clock.advance(TIMERS.t1)
    assert rig.statuses() == [200]
    rig.deliver(ack(req, re_ok, 2))
    rig.clock.advance(10)
    assert rig.take() == []


def test_in_dialog_requests_out_of_order_options_and_unknown_methods() -> None:
    rig = make_rig(Answer())
    req = invite(cseq=10)
    ok = answered(rig, req)
    rig.deliver(in_dialog("INFO", req, ok, 9))
    assert rig.statuses() == [500]  # RFC 3261 §12.2.2: lower CSeq than the last one
    rig.deliver(in_dialog("OPTIONS", req, ok, 11))
    (opt,) = rig.responses()
    assert opt.status == 200 and "UPDATE" in (opt.get("allow") or "")
    rig.deliver(in_dialog("SUBSCRIBE", req, ok, 12))
    (refused,) = rig.responses()
    assert refused.status == 405 and refused.get("allow")


def test_out_of_dialog_requests() -> None:
    rig = make_rig()
    base = (b"OPTIONS sip:pstn@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKo1\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:pstn@127.0.0.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n")
    rig.deliver(base)
    (ok,) = rig.responses()
    assert ok.status == 200 and "INVITE" in (ok.get("allow") or "") and ok.get("supported") == "timer"
    rig.deliver(base.replace(b"OPTIONS", b"MESSAGE").replace(b"z9hG4bKo1", b"z9hG4bKm1"))
    assert rig.statuses() == [405]
    rig.deliver(base.replace(b"OPTIONS", b"BYE").replace(b"z9hG4bKo1", b"z9hG4bKb1"))
    assert rig.statuses() == [481]
    rig.deliver(b"not SIP at all")
    rig.deliver(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKnothing\r\n"
                b"From: <sip:a@b>;tag=1\r\nTo: <sip:x>;tag=2\r\nCall-ID: z\r\nCSeq: 1 BYE\r\n\r\n")
    assert rig.take() == []


def test_extensions_and_session_timers() -> None:
    rig = make_rig(Answer(), Answer())
    rig.deliver(invite(extra=[("Require", "100rel")]))
    trying, bad = rig.responses()
    assert trying.status == 100 and (bad.status, bad.get("unsupported")) == (420, "100rel")
    rig.deliver(invite(extra=[("Supported", "timer"), ("Session-Expires", str(MIN_SE - 1))]))
    too_small = rig.responses()[1]
    assert (too_small.status, too_small.get("min-se")) == (422, str(MIN_SE))
    rig.deliver(invite(extra=[("Supported", "timer, replaces"), ("Session-Expires", "1800;refresher=uas")]))
    ok = rig.responses()[1]
    assert ok.get("session-expires") == "1800;refresher=uac" and ok.get("require") == "timer"
    rig.deliver(invite(extra=[("Session-Expires", "1800")]))  # a proxy's, the caller cannot refresh
    plain = rig.responses()[1]
    assert plain.status == 200 and plain.get("session-expires") is None


def test_decide_failures_answer_500_and_leave_nothing_behind() -> None:
    def broken(req: Request, peer: tuple[str, int]) -> Decision:
        raise RuntimeError("bug in a rule")

    rig = make_rig()
    rig.agent.decide = broken
    rig.deliver(invite())
    assert rig.statuses() == [100, 500]
    rig.agent.decide = lambda req, peer: "answer"  # type: ignore[assignment,return-value]
    rig.deliver(invite())
    assert rig.statuses() == [100, 500]
    assert not rig.agent.calls()


def test_malformed_invites_get_400_before_any_decision() -> None:
    rig = make_rig()  # no decision queued: deciding would fail the test with 500
    rig.deliver(invite(extra=[("Contact", "<sip:bad uri>")]).to_bytes().replace(
        f"Contact: <{CONTACT}>\r\n".encode(), b""))
    assert rig.statuses() == [100, 400]


# --- our own BYE ------------------------------------------------------------------------------------

def test_hang_up_after_n_seconds_follows_the_route_set() -> None:
    rig = make_rig(Answer(hang_up_after=5))
    req = invite(cseq=7)
    ok = answered(rig, req)
    rig.clock.advance(4.9)
    assert rig.take() == []
    rig.clock.advance(0.1)
    ((bye, dest),) = sent_requests(rig)
    assert dest == ROUTE_HOP  # the first Record-Route entry, not where the INVITE came from
    assert bye.method == "BYE" and bye.uri == CONTACT  # loose routing: the remote target
    assert bye.values("route") == req.values("record-route")  # UAS: the Record-Route order as is
    assert bye.get("from") == f"{req.get('to')};tag={ok.to_tag}"
    assert bye.get("to") == req.get("from")
    assert (bye.call_id, bye.cseq.method, bye.max_forwards) == (req.call_id, "BYE", 70)
    assert bye.cseq.seq == 1  # our own CSeq space, independent of the caller's 7
    assert bye.top_via.sent_by == ("127.0.0.1", 5090) and (bye.top_via.branch or "").startswith("z9hG4bK")
    assert rig.agent.get(1) is None and rig.changes[-1] == (1, "ended")
    rig.deliver(reply_to(bye))
    assert rig.changes[-1] == (1, "ended")
    rig.clock.advance(60)
    assert rig.take() == []  # the BYE transaction is done: no retransmission


def test_bye_without_an_answer_is_retransmitted_then_gives_up_with_408() -> None:
    calls: list[UasCall] = []
    rig = make_rig(Answer(hang_up_after=1))
    rig.agent.on_change = calls.append
    req = invite()
    answered(rig, req)
    rig.clock.advance(1)
    ((bye, _),) = sent_requests(rig)
    rig.clock.advance(TIMERS.t1)
    ((again, dest),) = sent_requests(rig)
    assert again.to_bytes() == bye.to_bytes() and dest == ROUTE_HOP  # Timer E
    rig.clock.advance(64 * TIMERS.t1)
    assert calls[-1].bye_status == 408 and calls[-1].ended_by == "hangup"


def test_hang_up_before_the_ack_waits_for_it() -> None:
    rig = make_rig(Answer(hang_up_after=0.1))
    req = invite()
    rig.deliver(req)
    ok = rig.responses()[1]
    rig.clock.advance(0.2)
    assert all(isinstance(m, Response) for m, _ in rig.take())  # §15: no BYE before the ACK
    rig.deliver(ack(req, ok))
    ((bye, dest),) = sent_requests(rig)
    assert bye.method == "BYE" and dest == ROUTE_HOP


def test_strict_route_puts_the_route_in_the_request_uri() -> None:
    rig = make_rig(Answer())
    req = invite(rr=["<sip:127.0.0.8:5070>", "<sip:127.0.0.9;lr>"])
    answered(rig, req)
    assert rig.agent.hang_up(1, reason='SIP;cause=200;text="lab"')
    ((bye, dest),) = sent_requests(rig)
    assert bye.uri == "sip:127.0.0.8:5070" and dest == ("127.0.0.8", 5070)
    assert bye.values("route") == ["<sip:127.0.0.9;lr>", f"<{CONTACT}>"]
    assert bye.get("reason") == 'SIP;cause=200;text="lab"'


def test_without_record_route_the_bye_goes_to_the_contact() -> None:
    rig = make_rig(Answer())
    req = invite(rr=[])
    answered(rig, req)
    rig.agent.hang_up(1)
    ((bye, dest),) = sent_requests(rig)
    assert bye.uri == CONTACT and not bye.has("route") and dest == ("127.0.0.1", 5062)


def test_hang_up_while_ringing_sends_a_final() -> None:
    rig = make_rig(Ring())
    rig.deliver(invite())
    rig.take()
    assert rig.agent.hang_up(1)
    assert rig.statuses() == [480]
    assert not rig.agent.hang_up(1)  # no longer live
    assert rig.changes[-1] == (1, "rejected")


def test_max_call_hangs_up_a_forgotten_call() -> None:
    rig = make_rig(Answer(), max_call=100.0)
    req = invite()
    answered(rig, req)
    rig.clock.advance(100)
    ((bye, _),) = sent_requests(rig)
    assert bye.method == "BYE" and rig.changes[-1] == (1, "ended")


def test_close_hangs_up_confirmed_calls_and_refuses_ringing_ones() -> None:
    rig = make_rig(Answer(), Ring())
    answered(rig, invite())
    rig.deliver(invite())
    rig.take()
    rig.agent.close()
    msgs = rig.take()
    assert sorted(m.method if isinstance(m, Request) else str(m.status) for m, _ in msgs) == ["503", "BYE"]
    assert not rig.agent.calls()
    rig.clock.advance(100)
    assert rig.take() == []  # closed: no timer runs


def test_rfc2543_ack_without_magic_cookie_confirms() -> None:
    rig = make_rig(Answer())
    req = invite(branch="old1")
    rig.deliver(req)
    ok = rig.responses()[1]
    rig.deliver((f"ACK {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
                 f"To: {ok.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 1 ACK\r\n\r\n").encode())
    assert rig.agent.calls()[0].state == "confirmed"


# --- decisions as values ----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: Reject(200, "OK"), lambda: Reject(700, "x"), lambda: Reject(486, ""),
    lambda: Reject(486, "Busy\r\nX: y"), lambda: Answer(ring=-1), lambda: Answer(ring=math.nan),
    lambda: Answer(hang_up_after=0), lambda: Answer(hang_up_after=math.inf),
    lambda: Answer(body=b"x"), lambda: Ring(headers=(("X-Bad", "a\r\nb"),)),
    lambda: Reject(486, "Busy", headers=(("Bad Name", "v"),)),
])
def test_bad_decisions_are_refused_when_made(make: Callable[[], Decision]) -> None:
    with pytest.raises(ValueError):
        make()


def test_decisions_describe_themselves() -> None:
    assert Answer().describe() == "answer"
    assert Answer(ring=2, hang_up_after=5).describe() == "ring 2 s then answer, hang up after 5 s"
    assert Reject(480, "Temporarily Unavailable", ring=30).describe() == "ring 30 s then 480 Temporarily Unavailable"
    assert Ring().describe() == "ring until cancelled"


def test_call_record_to_dict() -> None:
    rig = make_rig(Answer(hang_up_after=2))
    req = invite()
    answered(rig, req)
    rig.clock.advance(2)
    records: list[UasCall] = []
    rig.agent.on_change = records.append
    (bye, _), = sent_requests(rig)
    rig.deliver(reply_to(bye))
    data = records[-1].to_dict()
    assert data["state"] == "ended" and data["ended_by"] == "hangup" and data["bye_status"] == 200
    assert data["duration"] == pytest.approx(2.0) and data["decision"] == "answer, hang up after 2 s"
    assert parse_name_addr(data["from"]).tag == "a1"

"""The simulated PSTN on a manual clock: the rule book applied to real INVITEs, the call log, the API handle."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest

from gateway.clock import ManualClock
from gateway.media import MediaCounts
from gateway.pstn import PstnLog, PstnSimulator, RuleBook, dialled_number
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message
from gateway.sip.transaction import Timers

GATEWAY = ("127.0.0.1", 5060)
OFFER = (b"v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@dataclass
class Rig:
    clock: ManualClock
    sim: PstnSimulator
    sent: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    def call(self, number: str, *, scheme: str = "sip") -> Request:
        ruri = f"sip:{number}@127.0.0.1:5080" if scheme == "sip" else f"tel:{number}"
        req = Request("INVITE", ruri, [
            ["via", "Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{secrets.token_hex(6)}"],
            ["record-route", "Record-Route", "<sip:127.0.0.1:5060;lr>"],
            ["from", "From", "<sip:acct1-1001@lab.example>;tag=f1"],
            ["to", "To", f"<{ruri}>"],
            ["call-id", "Call-ID", secrets.token_hex(8)],
            ["cseq", "CSeq", "1 INVITE"],
            ["contact", "Contact", "<sip:acct1-1001@127.0.0.1:5062>"],
            ["content-type", "Content-Type", "application/sdp"],
        ], OFFER)
        self.sim.on_datagram(req.to_bytes(), GATEWAY)
        return req

    def take(self) -> list[Request | Response]:
        out = [parse_message(data) for data, _ in self.sent]
        self.sent.clear()
        return out

    def statuses(self) -> list[int]:
        return [m.status for m in self.take() if isinstance(m, Response)]

    def ack(self, req: Request, ok: Response) -> None:
        self.sim.on_datagram((f"ACK sip:pstn@127.0.0.1:5080 SIP/2.0\r\n"
                              f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack{secrets.token_hex(4)}\r\n"
                              f"From: {req.get('from')}\r\nTo: {ok.get('to')}\r\nCall-ID: {req.call_id}\r\n"
                              f"CSeq: 1 ACK\r\n\r\n").encode(), GATEWAY)

    def bye(self, req: Request, ok: Response) -> None:
        self.sim.on_datagram((f"BYE sip:pstn@127.0.0.1:5080 SIP/2.0\r\n"
                              f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbye{secrets.token_hex(4)}\r\n"
                              f"From: {req.get('from')}\r\nTo: {ok.get('to')}\r\nCall-ID: {req.call_id}\r\n"
                              f"CSeq: 2 BYE\r\n\r\n").encode(), GATEWAY)


@pytest.fixture
def rig() -> Rig:
    clock = ManualClock()
    sent: list[tuple[bytes, tuple[str, int]]] = []
    sim = PstnSimulator(clock=clock, send=lambda data, peer: sent.append((data, peer)), host="127.0.0.1",
                        port=5080, media_port=5082, rules=RuleBook(), log=PstnLog(), timers=Timers())
    return Rig(clock, sim, sent)


def test_busy_number_gets_486_and_a_log_entry(rig: Rig) -> None:
    req = rig.call("+14155550486")
    assert rig.statuses() == [100, 486]
    record = rig.sim.log.get(req.call_id)
    assert record is not None
    assert (record.number, record.rule, record.rule_source, record.behaviour) == (
        "+14155550486", "*0486", "default", "486 Busy Here")
    assert (record.state, record.status, record.reason) == ("rejected", 486, "Busy Here")
    assert record.caller == "sip:acct1-1001@lab.example" and record.source == "127.0.0.1:5060"
    assert not rig.sim.calls()


def test_answered_call_points_at_the_echo_and_ends_on_the_callers_bye(rig: Rig) -> None:
    req = rig.call("+14155550100")
    trying, ok = rig.take()
    assert isinstance(trying, Response) and trying.status == 100
    assert isinstance(ok, Response) and ok.status == 200 and b"m=audio 5082 RTP/AVP 0" in ok.body
    assert [c.number for c in rig.sim.calls()] == ["+14155550100"]
    rig.ack(req, ok)
    rig.clock.advance(42)
    rig.bye(req, ok)
    assert rig.statuses() == [200]
    record = rig.sim.log.get(req.call_id)
    assert record is not None and (record.state, record.ended_by) == ("ended", "bye")
    assert record.duration == pytest.approx(42) and record.media == ("127.0.0.1", 41000)
    data = record.to_dict(lambda addr: MediaCounts(7, 7) if addr == ("127.0.0.1", 41000) else MediaCounts())
    assert data["rtp"] == {"received": 7, "echoed": 7} and data["media"] == "127.0.0.1:41000"
    assert not rig.sim.calls()


def test_answer_and_hang_up_after_5_seconds_sends_bye_through_the_gateway(rig: Rig) -> None:
    req = rig.call("+14155550101")
    ok = rig.take()[1]
    assert isinstance(ok, Response)
    rig.ack(req, ok)
    rig.clock.advance(4.99)
    assert rig.take() == []
    rig.clock.advance(0.01)
    (bye,) = rig.take()
    assert isinstance(bye, Request) and bye.method == "BYE" and rig.sent == []
    assert bye.values("route") == ["<sip:127.0.0.1:5060;lr>"] and bye.uri == "sip:acct1-1001@127.0.0.1:5062"
    record = rig.sim.log.get(req.call_id)
    assert record is not None and (record.state, record.ended_by, record.duration) == ("ended", "hangup", 5.0)


def test_no_answer_rings_30_seconds_then_480(rig: Rig) -> None:
    req = rig.call("+14155550480")
    assert rig.statuses() == [100, 180]
    record = rig.sim.log.get(req.call_id)
    assert record is not None and record.state == "ringing"
    rig.clock.advance(29.9)
    assert rig.take() == []
    rig.clock.advance(0.1)
    assert rig.statuses() == [480]
    assert (record.state, record.status) == ("rejected", 480)


def test_unknown_number_404_and_not_a_number_484(rig: Rig) -> None:
    rig.call("+14155550404")
    assert rig.statuses() == [100, 404]
    req = rig.call("alice")
    assert rig.statuses() == [100, 484]
    record = rig.sim.log.get(req.call_id)
    assert record is not None and record.rule is None and record.number == req.uri


def test_rules_set_at_run_time_apply_to_the_next_call_and_clear_restores_defaults(rig: Rig) -> None:
    rig.sim.rules.set_rule("+1415555XXXX", {"action": "reject", "status": 503, "reason": "Trunk down"})
    rig.call("+14155550100")
    assert rig.statuses() == [100, 503]
    rig.sim.rules.clear()
    rig.call("+14155550100")
    assert rig.statuses() == [100, 200]
    assert [c.rule_source for c in rig.sim.log.calls()] == ["api", "default"]


def test_tel_uri_and_the_api_hang_up(rig: Rig) -> None:
    assert dialled_number(Request("INVITE", "tel:+1-415-555-0180;phone-context=x")) == "+14155550180"
    req = rig.call("+14155550180", scheme="tel")
    assert rig.statuses() == [100, 180]
    assert rig.sim.hang_up(req.call_id) and not rig.sim.hang_up(req.call_id)
    assert rig.statuses() == [480]
    record = rig.sim.log.get(req.call_id)
    assert record is not None and (record.state, record.ended_by) == ("rejected", "hangup")


def test_log_is_bounded_and_filterable() -> None:
    log = PstnLog(limit=2)
    clock = ManualClock()
    sim = PstnSimulator(clock=clock, send=lambda data, peer: None, host="127.0.0.1", port=5080,
                        media_port=5082, log=log)
    rig = Rig(clock, sim)
    for number in ("+14155550486", "+14155550404", "+14155550486"):
        rig.call(number)
    assert len(log) == 2 and [c.number for c in log] == ["+14155550404", "+14155550486"]
    assert [c.number for c in log.calls(number="+14155550486")] == ["+14155550486"]
    assert [c["status"] for c in log.to_dicts(limit=1)] == [486]
    with pytest.raises(ValueError):
        PstnLog(limit=0)

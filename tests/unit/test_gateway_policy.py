"""Call policy on live SIP through the real SipCore: caps, duration limits, session timers (#5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import FloodGuard
from gateway.sip.message import Request, Response
from gateway.transport import Peer
from tests.gwharness import (
    CONFERENCE,
    DOMAIN,
    PSTN,
    Gateway,
    Phone,
    answer_challenge,
    builtin_routes,
    register,
    request,
)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
T38 = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=image 4002 udptl t38\r\na=T38FaxVersion:0\r\n")


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return Gateway(tmp_path, plan="grasshopper")


def place_call(gw: Gateway, caller: Phone, target: str, call_id: str, body: str = SDP,
               extra: list[str] | None = None) -> list[Request | Response]:
    """INVITE → 407 → authenticated INVITE; returns what came back to the caller."""
    uri = f"sip:{target}@{DOMAIN}"
    gw.inject(request("INVITE", uri, caller, to=f"<{uri}>", call_id=call_id, cseq=1, body=body,
                      branch=f"z9hG4bKa{call_id}", extra=extra), caller.peer)
    challenge = gw.one(caller.peer)
    assert isinstance(challenge, Response) and challenge.status == 407
    auth = answer_challenge(challenge, caller, "INVITE", uri, "proxy-authenticate")
    gw.inject(request("INVITE", uri, caller, to=f"<{uri}>", call_id=call_id, cseq=2, body=body,
                      branch=f"z9hG4bKb{call_id}", extra=[*(extra or []), f"Proxy-Authorization: {auth}"]),
              caller.peer)
    return gw.take(caller.peer)


def answer(gw: Gateway, leg: Request, phone: Phone, *, tag: str, body: str = SDP,
           extra: list[str] | None = None, status: int = 200) -> None:
    vias = "\r\n".join(f"Via: {v}" for v in leg.values("via"))
    rr = "\r\n".join(f"Record-Route: {v}" for v in leg.values("record-route"))
    lines = [f"SIP/2.0 {status} OK", vias, *([rr] if rr else []), f"From: {leg.get('from')}",
             f"To: {leg.get('to')};tag={tag}", f"Call-ID: {leg.call_id}", f"CSeq: {leg.cseq.seq} {leg.cseq.method}",
             f"Contact: <{phone.contact}>", *(extra or []), f"Content-Length: {len(body)}", "", body]
    gw.inject("\r\n".join(lines), phone.peer)


def established(gw: Gateway, caller: Phone, callee: Phone, call_id: str, body: str = SDP,
                answer_extra: list[str] | None = None) -> Response:
    place_call(gw, caller, callee.extension, call_id, body=body)
    leg = gw.one(callee.peer)
    assert isinstance(leg, Request) and leg.method == "INVITE"
    answer(gw, leg, callee, tag=f"t{call_id}", body=body, extra=answer_extra)
    ok = [m for m in gw.take(caller.peer) if isinstance(m, Response) and m.status == 200]
    assert ok, "call not answered"
    return ok[0]


def byes(msgs: list[Request | Response]) -> list[Request]:
    return [m for m in msgs if isinstance(m, Request) and m.method == "BYE"]


def test_r20_cap_plus_one_is_refused_and_freeing_one_admits_the_next(tmp_path: Path) -> None:
    # fifty calls from one address in no time would trip the R27 flood guard first: widen it here
    gw = Gateway(tmp_path, plan="grasshopper", guard=FloodGuard(max_per_source=1000, max_per_callee=1000))
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    cap = 50
    for i in range(cap):
        established(gw, alice, bob, f"c{i}")
    assert len(gw.core.calls.calls) == cap
    refused = place_call(gw, alice, "1002", "over")
    final = [m for m in refused if isinstance(m, Response) and m.status >= 200]
    assert final[0].status == 503 and "R20" in final[0].reason
    assert gw.take(bob.peer) == []  # the 51st never reached the callee
    assert len(gw.core.calls.calls) == cap  # the first fifty stay up
    assert gw.records[-1]["rule_id"] == "R20" and gw.records[-1]["sip_code"] == 503
    # the callee hangs up one call: the next attempt is admitted
    ok = gw.core.calls.calls["c0@127.0.0.1"]
    assert ok.dialog is not None
    gw.inject(request("BYE", alice.contact, bob, to=f"<sip:{alice.username}@{DOMAIN}>", to_tag=ok.from_tag,
                      from_tag="tc0", call_id="c0", cseq=1, extra=["Route: <sip:127.0.0.1:5060;lr>"]),
              bob.peer)
    assert len(gw.core.calls.calls) == cap - 1
    gw.take(alice.peer)
    established(gw, alice, bob, "next")
    assert len(gw.core.calls.calls) == cap


def test_forked_call_counts_once(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    desk = Phone(bob.username, bob.password, "1002", bob.device_id, Peer("udp", "127.0.0.1", 47100))
    register(gw, desk)
    place_call(gw, alice, "1002", "forked")
    assert len(gw.take(bob.peer)) == 1 and len(gw.take(desk.peer)) == 1
    proxy = gw.core.proxy
    assert proxy.counters.active(f"acct:{gw.account_id}") == 1


def test_voice_call_is_cut_at_six_hours_with_reason_on_both_legs(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    established(gw, alice, bob, "long")
    gw.clock.advance(6 * 3600 - 1)
    assert byes(gw.take(alice.peer)) == [] and byes(gw.take(bob.peer)) == []
    gw.clock.advance(2)
    to_caller, to_callee = byes(gw.take(alice.peer)), byes(gw.take(bob.peer))
    assert to_caller and to_callee
    for bye in (to_caller[0], to_callee[0]):
        reason = bye.get("reason") or ""
        assert reason.startswith("SIP;cause=") and "R20" in reason and "6 h" in reason
    assert to_callee[0].uri == bob.contact and to_caller[0].uri == alice.contact
    assert to_callee[0].to_tag == "tlong" and to_caller[0].from_tag == "tlong"
    assert to_callee[0].cseq.seq > 2  # after the caller's own INVITE CSeq
    [record] = gw.records
    assert record["rule_id"] == "R20" and record["disposition"] == "answered"
    assert record["duration_s"] == pytest.approx(6 * 3600, abs=1)
    assert gw.core.proxy.counters.active(f"acct:{gw.account_id}") == 0  # the lease went with it


def test_t38_call_is_cut_at_three_hours(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    established(gw, alice, bob, "fax", body=T38)
    gw.clock.advance(3 * 3600 + 1)
    assert byes(gw.take(alice.peer)) and byes(gw.take(bob.peer))
    [record] = gw.records
    assert record["rule_id"] == "R20" and "Fax" in record["reason"]


def test_reinvite_to_t38_switches_to_the_fax_cap(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    ok = established(gw, alice, bob, "switch")
    gw.clock.advance(3600)
    route = ok.values("record-route")[0]
    gw.inject(request("INVITE", bob.contact, alice, to=f"<sip:1002@{DOMAIN}>", to_tag="tswitch",
                      call_id="switch", cseq=3, body=T38, extra=[f"Route: {route}"]), alice.peer)
    reinvite = next(m for m in gw.take(bob.peer) if isinstance(m, Request) and m.method == "INVITE")
    answer(gw, reinvite, bob, tag="tswitch", body=T38)
    gw.take(alice.peer)
    gw.clock.advance(2 * 3600 + 1)  # 3 h after the answer in total
    assert byes(gw.take(bob.peer))
    assert "Fax" in gw.records[0]["reason"]


def test_session_timer_ends_a_call_nobody_refreshes(gw: Gateway) -> None:
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    established(gw, alice, bob, "st", answer_extra=["Session-Expires: 90;refresher=uac", "Require: timer"])
    gw.clock.advance(89)
    assert byes(gw.take(bob.peer)) == []
    gw.clock.advance(2)
    assert byes(gw.take(bob.peer)) and byes(gw.take(alice.peer))
    assert "Session expired" in gw.records[0]["reason"]


def test_r27_flood_guard_trips_bans_and_clears(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, plan="grasshopper", guard=FloodGuard(window=10, max_per_source=3, ban_seconds=60))
    alice, bob = gw.phone("1001"), gw.phone("1002")
    register(gw, alice)
    register(gw, bob)
    for i in range(3):
        established(gw, alice, bob, f"f{i}")
    tripped = [m for m in place_call(gw, alice, "1002", "f3") if isinstance(m, Response) and m.status >= 200]
    assert tripped[0].status == 503 and "R27" in tripped[0].reason
    assert gw.core.proxy.counters.bans(gw.clock.now())  # visible (the API lists these)
    gw.clock.advance(30)  # the window has passed, the ban has not
    gw.take(alice.peer)  # (unACKed final answers were retransmitted meanwhile)
    banned = [m for m in place_call(gw, alice, "1002", "f4") if isinstance(m, Response) and m.status >= 200]
    assert banned[0].status == 503 and "temporarily blocked" in banned[0].reason
    assert gw.core.proxy.counters.unban(f"src:{alice.username}")  # cleared by hand (API)
    gw.take(bob.peer)
    established(gw, alice, bob, "f5")  # the attempt history went with the ban: not tripped again
    established(gw, alice, bob, "f6")


@pytest.fixture
def trunk(tmp_path: Path) -> Gateway:
    return Gateway(tmp_path, plan="grasshopper", routes=builtin_routes())


def final_status(msgs: list[Request | Response]) -> Response:
    return next(m for m in msgs if isinstance(m, Response) and m.status >= 200)


def test_domestic_number_goes_to_the_pstn_trunk(trunk: Gateway) -> None:
    alice = trunk.phone("1001")
    register(trunk, alice)
    place_call(trunk, alice, "4155550100", "pstn1")
    [leg] = trunk.take(PSTN)
    assert isinstance(leg, Request) and leg.uri == f"sip:+14155550100@{PSTN.host}:{PSTN.port}"
    assert trunk.core.calls.calls["pstn1@127.0.0.1"].call_type == "domestic"


def test_r24_international_refused_before_the_deposit_and_admitted_after(trunk: Gateway) -> None:
    from sqlmodel import Session

    from provisioning.services.accounts import record_deposit

    alice = trunk.phone("1001")
    register(trunk, alice)
    refused = final_status(place_call(trunk, alice, "011442079460000", "intl1"))
    assert refused.status == 403 and "R24" in refused.reason
    assert trunk.take(PSTN) == [] and trunk.records[-1]["rule_id"] == "R24"
    assert (trunk.records[-1]["call_type"], trunk.records[-1]["destination"]) == ("international", "+442079460000")
    with Session(trunk.engine) as s:
        record_deposit(trunk._env(s), trunk.account_id, 500)
    place_call(trunk, alice, "011442079460000", "intl2")
    [leg] = trunk.take(PSTN)
    assert isinstance(leg, Request) and "+442079460000" in leg.uri
    assert trunk.core.calls.calls["intl2@127.0.0.1"].call_type == "international"


def test_r25_blocked_destination_and_r28_premium(trunk: Gateway) -> None:
    alice = trunk.phone("1001")
    register(trunk, alice)
    blocked = final_status(place_call(trunk, alice, "18095550100", "blk"))  # +1809: Caribbean IRSF range
    assert blocked.status == 403 and "R25" in blocked.reason
    premium = final_status(place_call(trunk, alice, "19005550100", "prem"))
    assert premium.status == 403 and "R28" in premium.reason
    assert trunk.take(PSTN) == []
    assert [r["rule_id"] for r in trunk.records] == ["R25", "R28"]


def test_conference_room_is_routed_to_the_bridge(trunk: Gateway) -> None:
    alice = trunk.phone("1001")
    register(trunk, alice)
    place_call(trunk, alice, "7001", "conf1")
    [leg] = trunk.take(CONFERENCE)
    assert isinstance(leg, Request) and leg.uri.startswith("sip:7001@")
    assert trunk.core.calls.calls["conf1@127.0.0.1"].call_type == "conference"
    nothing = final_status(place_call(trunk, alice, "7999", "conf2"))
    assert nothing.status == 404


def test_rated_record_r24_rounding_and_r28_international_rate(trunk: Gateway) -> None:
    from decimal import Decimal

    from sqlmodel import Session

    from provisioning.plans import load_plans
    from provisioning.schemas import CdrIn
    from provisioning.services.accounts import record_deposit

    alice = trunk.phone("1001")
    register(trunk, alice)
    with Session(trunk.engine) as s:
        record_deposit(trunk._env(s), trunk.account_id, 500)
    for call_id, number, talk in (("dom", "4155550100", 1), ("gb", "011442079460000", 61)):
        place_call(trunk, alice, number, call_id)
        [leg] = trunk.take(PSTN)
        assert isinstance(leg, Request)
        fake_trunk = Phone("trunk", "", "", 0, PSTN)
        answer(trunk, leg, fake_trunk, tag=f"t{call_id}")
        trunk.take(alice.peer)
        trunk.clock.advance(talk)
        trunk.core.proxy.end_call(f"{call_id}@127.0.0.1", "test hang-up", None)
        trunk.take(alice.peer)
        trunk.take(PSTN)
    dom, gb = trunk.records
    assert (dom["call_type"], dom["billable_s"], dom["charge"]) == ("domestic", 18, Decimal(0))  # 1 s → 18 s
    assert (gb["call_type"], gb["billable_s"]) == ("international", 66)  # 61 s → 66 s
    rate = load_plans().plans["grasshopper"].quote("+442079460000", "US").per_min
    assert gb["rate_per_min"] == rate and gb["charge"] == (rate * 66 / 60).quantize(Decimal("0.0001"))
    for record in (dom, gb):
        CdrIn.model_validate(record)  # what the CDR writer stores

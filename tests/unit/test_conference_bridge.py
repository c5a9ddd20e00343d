"""The OpenVoice bridge (R30) on a manual clock: rooms, PINs, the connection cap at its boundary, the roster."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest

from gateway.clock import ManualClock
from gateway.conference import (
    DEFAULT_MAX_PARTICIPANTS,
    ConferenceBridge,
    MemoryRoomStore,
    Room,
    RoomConflict,
    RoomError,
)
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message
from gateway.sip.transaction import Timers

GATEWAY = ("127.0.0.1", 5060)
OFFER = (b"v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 41000 RTP/AVP 0\r\n")


@dataclass
class Rig:
    clock: ManualClock
    bridge: ConferenceBridge
    sent: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    def dial(self, user: str, *, pin_header: str | None = None, caller: str = "acct1-1001") -> Request:
        ruri = f"sip:{user}@127.0.0.1:5070"
        headers = [
            ["via", "Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{secrets.token_hex(6)}"],
            ["from", "From", f'"{caller}" <sip:{caller}@lab.example>;tag={secrets.token_hex(3)}'],
            ["to", "To", f"<{ruri}>"],
            ["call-id", "Call-ID", secrets.token_hex(8)],
            ["cseq", "CSeq", "1 INVITE"],
            ["contact", "Contact", f"<sip:{caller}@127.0.0.1:5062>"],
            ["content-type", "Content-Type", "application/sdp"],
        ]
        if pin_header is not None:
            headers.append(["x-conference-pin", "X-Conference-PIN", pin_header])
        req = Request("INVITE", ruri, headers, OFFER)
        self.bridge.on_datagram(req.to_bytes(), GATEWAY)
        return req

    def final(self) -> Response:
        out = [parse_message(data) for data, _ in self.sent]
        self.sent.clear()
        finals = [m for m in out if isinstance(m, Response) and m.status >= 200]
        assert len(finals) == 1, out
        return finals[0]

    def join(self, user: str, **kw: str) -> tuple[Request, Response]:
        req = self.dial(user, **kw)
        ok = self.final()
        assert ok.status == 200, (ok.status, ok.reason)
        self.bridge.on_datagram(self._in_dialog("ACK", req, ok, 1), GATEWAY)
        return req, ok

    def leave(self, req: Request, ok: Response) -> None:
        self.bridge.on_datagram(self._in_dialog("BYE", req, ok, 2), GATEWAY)
        assert self.final().status == 200

    def ack_refusal(self, req: Request, resp: Response) -> None:
        """RFC 3261 §17.1.1.3: the ACK for a non-2xx final, on the INVITE's branch (stops Timer G)."""
        self.bridge.on_datagram((f"ACK {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
                                 f"To: {resp.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 1 ACK\r\n\r\n").encode(),
                                GATEWAY)

    @staticmethod
    def _in_dialog(method: str, req: Request, ok: Response, cseq: int) -> bytes:
        return (f"{method} sip:conference@127.0.0.1:5070 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                f"From: {req.get('from')}\r\nTo: {ok.get('to')}\r\nCall-ID: {req.call_id}\r\n"
                f"CSeq: {cseq} {method}\r\n\r\n").encode()


def make_rig(**kw: object) -> Rig:
    clock = ManualClock()
    sent: list[tuple[bytes, tuple[str, int]]] = []
    bridge = ConferenceBridge(clock=clock, send=lambda data, peer: sent.append((data, peer)), host="127.0.0.1",
                              port=5070, media_port=5072, timers=Timers(), **kw)  # type: ignore[arg-type]
    return Rig(clock, bridge, sent)


# --- rooms ---------------------------------------------------------------------------------------------

def test_rooms_are_created_with_fresh_numbers_and_pins_listed_and_deleted() -> None:
    changes: list[tuple[str, Room | None]] = []
    rig = make_rig(store=MemoryRoomStore(on_change=lambda n, r: changes.append((n, r))))
    ann = rig.bridge.create_room("ann.lee", name="Weekly")
    assert ann.number.isdecimal() and len(ann.number) == 8 and ann.number[0] != "0"
    assert ann.pin.isdecimal() and len(ann.pin) == 6
    bob = rig.bridge.create_room("bob.stone", number="5550100", pin="2468", account_id=7, max_connections=10)
    assert [r.number for r in rig.bridge.rooms()] == [ann.number, "5550100"]
    assert rig.bridge.room("5550100") == bob and changes == [(ann.number, ann), ("5550100", bob)]
    assert "pin" not in bob.to_dict() and bob.to_dict(include_pin=True)["pin"] == "2468"
    assert rig.bridge.delete_room("5550100") and not rig.bridge.delete_room("5550100")
    assert changes[-1] == ("5550100", None) and rig.bridge.roster("5550100") is None


def test_r30_one_unique_room_number_per_organizer() -> None:
    rig = make_rig()
    rig.bridge.create_room("ann.lee", number="5550100")
    with pytest.raises(RoomConflict, match="R30"):
        rig.bridge.create_room("ann.lee")
    with pytest.raises(RoomConflict, match="taken"):
        rig.bridge.create_room("bob.stone", number="5550100")


@pytest.mark.parametrize(("kw", "message"), [
    ({"organizer": ""}, "named user"), ({"organizer": "a\nb"}, "named user"),
    ({"organizer": "x", "number": "12"}, "room number"), ({"organizer": "x", "number": "55501a0"}, "room number"),
    ({"organizer": "x", "number": "١٢٣٤٥"}, "room number"),  # decimal, but not ASCII digits
    ({"organizer": "x", "pin": "123"}, "PIN"), ({"organizer": "x", "pin": "12345678901"}, "PIN"),
    ({"organizer": "x", "pin": "12a4"}, "PIN"), ({"organizer": "x", "max_connections": 0}, "max_connections"),
    ({"organizer": "x", "max_connections": True}, "max_connections"),
])
def test_bad_rooms_are_refused_with_a_reason(kw: dict[str, object], message: str) -> None:
    rig = make_rig()
    organizer = kw.pop("organizer")
    with pytest.raises(RoomError, match=message):
        rig.bridge.create_room(organizer, **kw)  # type: ignore[arg-type]
    assert rig.bridge.rooms() == []


# --- dial-in ---------------------------------------------------------------------------------------------

def test_participant_and_organizer_join_and_show_in_the_roster() -> None:
    rig = make_rig()
    room = rig.bridge.create_room("ann.lee", number="5550100", pin="2468")
    rig.clock.advance(10)
    bob_joined = rig.clock.wall()
    req, ok = rig.join(room.number, caller="bob")
    assert b"m=audio 5072 RTP/AVP 0" in ok.body
    rig.clock.advance(5)
    rig.join(f"{room.number}*2468", caller="ann")
    rig.join(room.number, pin_header="2468", caller="ann2")
    roster = rig.bridge.roster(room.number)
    assert roster is not None
    assert [(p.role, p.caller, p.state) for p in roster] == [
        ("participant", "sip:bob@lab.example", "confirmed"), ("organizer", "sip:ann@lab.example", "confirmed"),
        ("organizer", "sip:ann2@lab.example", "confirmed")]
    assert roster[0].joined_at == roster[0].admitted_at == bob_joined
    assert roster[1].joined_at is not None and roster[0].joined_at is not None
    assert (roster[1].joined_at - roster[0].joined_at).total_seconds() == 5
    data = roster[0].to_dict()
    assert data["display"] == "bob" and data["call_id"] == req.call_id and data["joined_at"]
    rig.leave(req, ok)
    assert [p.caller for p in rig.bridge.roster(room.number) or []] == [
        "sip:ann@lab.example", "sip:ann2@lab.example"]


def test_wrong_pin_403_and_unknown_room_404() -> None:
    rig = make_rig()
    room = rig.bridge.create_room("ann.lee", number="5550100", pin="2468")
    rig.dial(f"{room.number}*1357")
    assert (lambda r: (r.status, r.reason))(rig.final()) == (403, "Wrong organizer PIN")
    rig.dial(f"{room.number}*")
    assert rig.final().status == 403
    rig.dial(room.number, pin_header="0000")
    assert rig.final().reason == "Wrong organizer PIN"
    rig.dial("5550199")
    unknown = rig.final()
    assert unknown.status == 404 and unknown.reason == "Conference Room Not Found"
    rig.dial("conference")
    assert rig.final().status == 404
    assert rig.bridge.connections(room.number) == 0


@pytest.mark.parametrize("cap", [3, DEFAULT_MAX_PARTICIPANTS])
def test_cap_at_its_boundary_and_freeing_one_admits_the_next(cap: int) -> None:
    rig = make_rig() if cap == DEFAULT_MAX_PARTICIPANTS else make_rig(max_participants=cap)
    room = rig.bridge.create_room("ann.lee", number="5550100", pin="2468")
    calls = [rig.join(room.number) for _ in range(cap - 1)]
    assert rig.bridge.connections(room.number) == cap - 1
    calls.append(rig.join(f"{room.number}*2468"))  # the cap-th connection, the organizer, still gets in
    assert rig.bridge.connections(room.number) == cap
    rig.dial(room.number)  # cap + 1
    full = rig.final()
    assert (full.status, full.reason) == (486, f"Conference full: {cap} connections (R30)")
    rig.dial(f"{room.number}*2468")  # organizers count like everyone
    assert rig.final().status == 486
    assert rig.bridge.connections(room.number) == cap
    rig.leave(*calls[0])
    assert rig.bridge.connections(room.number) == cap - 1
    rig.join(room.number)
    assert rig.bridge.connections(room.number) == cap


def test_per_room_cap_and_other_rooms_are_not_counted() -> None:
    rig = make_rig(max_participants=5)
    small = rig.bridge.create_room("ann.lee", number="5550100", max_connections=1)
    big = rig.bridge.create_room("bob.stone", number="5550200")
    rig.join(small.number)
    rig.dial(small.number)
    assert rig.final().reason == "Conference full: 1 connections (R30)"
    for _ in range(5):
        rig.join(big.number)
    assert (rig.bridge.connections(small.number), rig.bridge.connections(big.number)) == (1, 5)


def test_a_ringing_connection_counts_and_cancel_frees_it() -> None:
    rig = make_rig(max_participants=1, answer_delay=2.0)
    room = rig.bridge.create_room("ann.lee", number="5550100")
    req = rig.dial(room.number)
    assert [parse_message(d).status for d, _ in rig.sent] == [100, 180]  # type: ignore[union-attr]
    rig.sent.clear()
    assert [p.state for p in rig.bridge.roster(room.number) or []] == ["ringing"]
    second = rig.dial(room.number)
    busy = rig.final()
    assert busy.status == 486
    rig.ack_refusal(second, busy)
    rig.bridge.on_datagram((f"CANCEL {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
                            f"To: {req.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 1 CANCEL\r\n\r\n").encode(),
                           GATEWAY)
    ok, terminated = (parse_message(d) for d, _ in rig.sent)
    rig.sent.clear()
    assert isinstance(ok, Response) and isinstance(terminated, Response)
    assert (ok.status, terminated.status) == (200, 487)
    rig.ack_refusal(req, terminated)
    assert rig.bridge.connections(room.number) == 0
    rig.dial(room.number)
    rig.clock.advance(2)
    assert rig.final().status == 200


def test_no_ack_frees_the_connection() -> None:
    rig = make_rig(max_participants=1)
    room = rig.bridge.create_room("ann.lee", number="5550100")
    rig.dial(room.number)
    assert rig.final().status == 200
    rig.clock.advance(64 * Timers().t1 + 1)
    assert rig.bridge.connections(room.number) == 0


def test_kick_and_delete_hang_up_with_bye() -> None:
    rig = make_rig()
    room = rig.bridge.create_room("ann.lee", number="5550100")
    rig.join(room.number, caller="bob")
    rig.join(room.number, caller="carol")
    roster = rig.bridge.roster(room.number) or []
    assert rig.bridge.kick(room.number, roster[0].id) and not rig.bridge.kick(room.number, roster[0].id)
    (bye,) = [parse_message(d) for d, _ in rig.sent]
    rig.sent.clear()
    assert isinstance(bye, Request) and bye.method == "BYE" and (bye.get("to") or "").startswith('"bob"')
    assert [p.caller for p in rig.bridge.roster(room.number) or []] == ["sip:carol@lab.example"]
    assert rig.bridge.delete_room(room.number)
    (bye,) = [parse_message(d) for d, _ in rig.sent]
    assert isinstance(bye, Request) and bye.get("reason") == 'SIP;cause=200;text="Conference room deleted"'
    assert rig.bridge.connections(room.number) == 0
    rig.sent.clear()
    rig.dial(room.number)
    assert rig.final().status == 404


def test_route_uri_names_rooms_only() -> None:
    rig = make_rig()
    rig.bridge.create_room("ann.lee", number="5550100")
    assert rig.bridge.route_uri("5550100*2468", "127.0.0.1", 5070) == "sip:5550100*2468@127.0.0.1:5070"
    assert rig.bridge.route_uri("5550101", "127.0.0.1", 5070) is None
    assert rig.bridge.route_uri("+14155550100", "::1", 5070) is None

"""The OpenVoice conference bridge (R30), sans-IO: rooms, dial-in, the 500-connection cap, a live roster.

Why on the generic UAS: joining a conference is an INVITE answered 200 or
refused with a reason; leaving is a BYE (or a CANCEL while it rang). The
bridge only decides who gets in:

- Request-URI user ``<room>``: a participant; ``<room>*<pin>`` or a
  ``X-Conference-PIN: <pin>`` header: the organizer. Unknown room → 404
  "Conference Room Not Found"; wrong PIN → 403 "Wrong organizer PIN".
- At most the room's cap of connections (`max_connections`, else the
  bridge's `max_participants`, which the composition root sets from the
  plan's `conference_max`, 500 for OpenVoice): the next one gets
  486 "Conference full: 500 connections (R30)". A connection counts from
  the moment it is admitted (also while it rings) until it ends by any
  path: BYE, CANCEL, no ACK, our hang-up, the room deleted.

Media: the answer's SDP points at an RTP echo (each participant hears
itself, which proves the media path) or, with `echo=False` on the server,
a sink. There is no mixing: participants do not hear each other.
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.clock import Clock
from gateway.conference.rooms import (
    RULE,
    MemoryRoomStore,
    Room,
    RoomConflict,
    RoomStore,
    check_max,
    check_number,
    check_organizer,
    check_pin,
    new_number,
    new_pin,
)
from gateway.sip.errors import SipError
from gateway.sip.message import Request
from gateway.sip.transaction import DEFAULT_TIMERS, Timers
from gateway.sip.uri import AbsoluteURI, SipURI
from gateway.uas.agent import UserAgentServer
from gateway.uas.call import ANSWERED, LIVE_STATES, UasCall
from gateway.uas.decision import Answer, Decision, Reject

Address = tuple[str, int]
DEFAULT_MAX_PARTICIPANTS = 500
PIN_HEADER = "x-conference-pin"
ORGANIZER = "organizer"
PARTICIPANT = "participant"
USER_AGENT = "voiplab-conference/0.1"


@dataclass(frozen=True, slots=True)
class DialIn:
    """What a caller dialled: the room, and the organizer PIN when one was given."""

    room: str
    pin: str | None


def parse_dial_in(req: Request) -> DialIn | None:
    """`<room>` / `<room>*<pin>` from the Request-URI user (sip:) or number (tel:), PIN header as fallback."""
    try:
        uri = req.ruri
    except SipError:
        return None
    if isinstance(uri, SipURI):
        user = uri.user_unescaped or ""
    elif isinstance(uri, AbsoluteURI) and uri.scheme == "tel":
        user = uri.raw.partition(":")[2].split(";")[0]
    else:
        return None
    room, star, pin = user.partition("*")
    if not room.isdecimal() or not room.isascii():
        return None
    if star:
        return DialIn(room, pin)
    header = req.get(PIN_HEADER)
    return DialIn(room, header.strip() if header is not None else None)


@dataclass(slots=True, eq=False)
class Participant:
    """One connection to a room, from admission to its end."""

    id: int
    room: str
    role: str  # organizer | participant
    caller: str  # the From URI
    display: str | None
    call_id: str
    source: str
    admitted_at: datetime
    joined_at: datetime | None = None  # answered
    state: str = "joining"  # then the call's: ringing, answered, confirmed
    call_ref: int | None = None  # the agent's call record id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "room": self.room, "role": self.role, "caller": self.caller, "display": self.display,
            "call_id": self.call_id, "source": self.source, "state": self.state,
            "admitted_at": self.admitted_at.isoformat(),
            "joined_at": self.joined_at.isoformat() if self.joined_at else None,
        }


class ConferenceBridge:
    """Rooms and roster for the API; datagrams through `on_datagram`."""

    def __init__(self, *, clock: Clock, send: Callable[[bytes, Address], None], host: str, port: int,
                 media_port: int, store: RoomStore | None = None,
                 max_participants: int = DEFAULT_MAX_PARTICIPANTS, answer_delay: float = 0.0,
                 timers: Timers = DEFAULT_TIMERS, max_call: float = 12 * 3600.0) -> None:
        check_max(max_participants)
        if answer_delay < 0:
            raise ValueError("answer_delay must not be negative")
        self.clock = clock
        self.store: RoomStore = store if store is not None else MemoryRoomStore()
        self.max_participants = max_participants
        self.answer_delay = answer_delay
        self._roster: dict[str, dict[int, Participant]] = {}
        self._ids = itertools.count(1)
        self.agent = UserAgentServer(
            clock=clock, send=send, host=host, port=port, media_port=media_port, decide=self._decide,
            user="conference", tag_prefix="conf", sdp_origin="voiplab-conference",
            sdp_name="voiplab conference bridge", server=USER_AGENT, timers=timers, max_call=max_call,
            on_change=self._changed)

    # -- rooms (the API) -------------------------------------------------------------------------
    def create_room(self, organizer: str, *, number: str | None = None, pin: str | None = None,
                    name: str = "", account_id: int | None = None,
                    max_connections: int | None = None) -> Room:
        """A new room; RoomError (bad input) or RoomConflict (number taken, organizer has one: R30)."""
        organizer = check_organizer(organizer)
        if not isinstance(name, str) or len(name) > 200:
            raise ValueError("name must be a string of at most 200 characters")
        max_connections = check_max(max_connections)
        existing = next((r for r in self.store.all() if r.organizer == organizer), None)
        if existing is not None:
            raise RoomConflict(f"organizer {organizer} already has room {existing.number} "
                               f"({RULE}: one conference room number per organizer)")
        if number is None:
            number = new_number(lambda n: self.store.get(n) is not None)
        elif self.store.get(check_number(number)) is not None:
            raise RoomConflict(f"room number {number} is taken ({RULE}: room numbers are unique)")
        room = Room(number=number, organizer=organizer, pin=check_pin(pin) if pin is not None else new_pin(),
                    created_at=self.clock.wall(), name=name, account_id=account_id,
                    max_connections=max_connections)
        self.store.add(room)
        return room

    def rooms(self) -> list[Room]:
        return self.store.all()

    def room(self, number: str) -> Room | None:
        return self.store.get(number)

    def delete_room(self, number: str) -> bool:
        """Remove a room, hanging up everyone in it first; False when there was no such room."""
        if self.store.get(number) is None:
            return False
        for participant in list(self._roster.get(number, {}).values()):
            self._hang_up(participant, 'SIP;cause=200;text="Conference room deleted"')
        self._roster.pop(number, None)
        return self.store.remove(number)

    def roster(self, number: str) -> list[Participant] | None:
        """The room's live connections in order of admission; None when there is no such room."""
        if self.store.get(number) is None:
            return None
        return list(self._roster.get(number, {}).values())

    def connections(self, number: str) -> int:
        return len(self._roster.get(number, {}))

    def cap(self, room: Room) -> int:
        return room.max_connections if room.max_connections is not None else self.max_participants

    def kick(self, number: str, participant_id: int) -> bool:
        """Hang up one connection (BYE, or a final while it rings); False when it is not in the room."""
        participant = self._roster.get(number, {}).get(participant_id)
        return participant is not None and self._hang_up(participant, None)

    def route_uri(self, dialled: str, host: str, port: int) -> str | None:
        """`sip:<dialled>@host:port` when `dialled` (``<room>`` or ``<room>*<pin>``) names a room."""
        room = dialled.partition("*")[0]
        if not room.isdecimal() or self.store.get(room) is None:
            return None
        shown = f"[{host}]" if ":" in host else host
        return f"sip:{dialled}@{shown}:{port}"

    # -- SIP -----------------------------------------------------------------------------------------
    def on_datagram(self, data: bytes, peer: Address) -> None:
        self.agent.on_datagram(data, peer)

    def close(self) -> None:
        self.agent.close()
        self._roster.clear()

    def _decide(self, req: Request, peer: Address) -> Decision:
        dial = parse_dial_in(req)
        room = self.store.get(dial.room) if dial is not None else None
        if dial is None or room is None:
            return Reject(404, "Conference Room Not Found")
        role = PARTICIPANT
        if dial.pin is not None:
            if not hmac.compare_digest(dial.pin.encode(), room.pin.encode()):
                return Reject(403, "Wrong organizer PIN")
            role = ORGANIZER
        cap = self.cap(room)
        if self.connections(room.number) >= cap:
            return Reject(486, f"Conference full: {cap} connections ({RULE})")
        try:
            from_ = req.from_
            caller, display = str(from_.uri), from_.display
        except SipError:
            caller, display = req.get("from") or "", None
        participant = Participant(id=next(self._ids), room=room.number, role=role, caller=caller,
                                  display=display, call_id=req.call_id, source=f"{peer[0]}:{peer[1]}",
                                  admitted_at=self.clock.wall())
        self._roster.setdefault(room.number, {})[participant.id] = participant
        return Answer(ring=self.answer_delay, context=participant)

    def _changed(self, call: UasCall) -> None:
        participant = call.context
        if not isinstance(participant, Participant):
            return
        participant.call_ref = call.id
        if call.state in LIVE_STATES:
            participant.state = call.state
            if call.state == ANSWERED:
                participant.joined_at = call.answered_at
            return
        members = self._roster.get(participant.room)
        if members is not None and members.get(participant.id) is participant:
            del members[participant.id]
            if not members:
                del self._roster[participant.room]

    def _hang_up(self, participant: Participant, reason: str | None) -> bool:
        if participant.call_ref is None:
            return False
        return self.agent.hang_up(participant.call_ref, reason=reason)

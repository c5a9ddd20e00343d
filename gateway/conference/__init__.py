"""The OpenVoice conference bridge (R30): rooms per organizer with a PIN, dial-in, the 500 cap, a roster.

- `rooms`: `Room`, the `RoomStore` protocol the composition root may back
  with the DB, `MemoryRoomStore` (write-through `on_change`).
- `bridge.ConferenceBridge`: the sans-IO bridge on the generic UAS; the
  API-facing methods `create_room`, `rooms`, `room`, `delete_room`,
  `roster`, `kick`, `connections`.
- `server.ConferenceServer.start(host, port, clock=…, max_participants=…)`
  runs it with an RTP echo (no mixing).
"""

from gateway.conference.bridge import (
    DEFAULT_MAX_PARTICIPANTS,
    ConferenceBridge,
    DialIn,
    Participant,
    parse_dial_in,
)
from gateway.conference.rooms import MemoryRoomStore, Room, RoomConflict, RoomError, RoomStore
from gateway.conference.server import ConferenceServer

__all__ = [
    "DEFAULT_MAX_PARTICIPANTS",
    "ConferenceBridge",
    "ConferenceServer",
    "DialIn",
    "MemoryRoomStore",
    "Participant",
    "Room",
    "RoomConflict",
    "RoomError",
    "RoomStore",
    "parse_dial_in",
]

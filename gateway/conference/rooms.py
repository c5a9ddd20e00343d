"""OpenVoice conference rooms (R30): a number, an organizer, an organizer PIN, and where they live.

Why a store protocol and not a table: the bridge answers INVITEs on the SIP
path, where the gateway never queries the database; it reads rooms from a
`RoomStore` that is memory (`MemoryRoomStore`) and may write through to
wherever the composition root keeps them (`on_change`), or be replaced by
the lead's own implementation backed by the DB's read model.

R30: any number of organizers, each with a unique conference room number
and organizer PIN. So a room number is unique, and an organizer holds one
room (a second one is refused naming R30).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

RULE = "R30"
NUMBER_DIGITS = (3, 15)  # a room number is dialled: digits only, E.164's length at most
PIN_DIGITS = (4, 10)
GENERATED_NUMBER_DIGITS = 8
GENERATED_PIN_DIGITS = 6


class RoomError(ValueError):
    """A room that cannot be created as asked (the API's 422)."""


class RoomConflict(RoomError):
    """The number is taken, or the organizer has a room already (the API's 409)."""


@dataclass(frozen=True, slots=True)
class Room:
    """One conference room. `max_connections` None: the bridge's cap (the plan's `conference_max`)."""

    number: str
    organizer: str  # the organizer's named user ID
    pin: str
    created_at: datetime
    name: str = ""
    account_id: int | None = None
    max_connections: int | None = None

    def to_dict(self, *, include_pin: bool = False) -> dict[str, Any]:
        """JSON-ready form; the PIN only when asked (it is the organizer's secret)."""
        out: dict[str, Any] = {
            "number": self.number, "organizer": self.organizer, "name": self.name,
            "account_id": self.account_id, "max_connections": self.max_connections,
            "created_at": self.created_at.isoformat(),
        }
        if include_pin:
            out["pin"] = self.pin
        return out


class RoomStore(Protocol):
    """Where the bridge finds rooms. Must not block: `get` runs for every INVITE."""

    def get(self, number: str) -> Room | None: ...

    def all(self) -> list[Room]: ...

    def add(self, room: Room) -> None: ...

    def remove(self, number: str) -> bool: ...


class MemoryRoomStore:
    """Rooms in a dict; `on_change(number, room or None)` hears every add and remove (write-through)."""

    def __init__(self, rooms: Iterable[Room] = (),
                 on_change: Callable[[str, Room | None], None] | None = None) -> None:
        self._rooms: dict[str, Room] = {r.number: r for r in rooms}
        self.on_change = on_change

    def get(self, number: str) -> Room | None:
        return self._rooms.get(number)

    def all(self) -> list[Room]:
        return list(self._rooms.values())

    def add(self, room: Room) -> None:
        self._rooms[room.number] = room
        if self.on_change is not None:
            self.on_change(room.number, room)

    def remove(self, number: str) -> bool:
        if self._rooms.pop(number, None) is None:
            return False
        if self.on_change is not None:
            self.on_change(number, None)
        return True


def check_number(number: object) -> str:
    lo, hi = NUMBER_DIGITS
    if not isinstance(number, str) or not number.isdecimal() or not number.isascii() or not lo <= len(number) <= hi:
        raise RoomError(f"a room number is {lo} to {hi} digits, not {number!r}")
    return number


def check_pin(pin: object) -> str:
    lo, hi = PIN_DIGITS
    if not isinstance(pin, str) or not pin.isdecimal() or not pin.isascii() or not lo <= len(pin) <= hi:
        raise RoomError(f"an organizer PIN is {lo} to {hi} digits")
    return pin


def check_organizer(organizer: object) -> str:
    if not isinstance(organizer, str) or not organizer.strip() or len(organizer) > 128 or any(
            ord(c) < 32 or ord(c) == 127 for c in organizer):
        raise RoomError("the organizer is a named user ID (1 to 128 printable characters)")
    return organizer.strip()


def check_max(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RoomError(f"max_connections is a positive integer, not {value!r}")
    return value


def new_number(taken: Callable[[str], bool]) -> str:
    """A fresh random room number (no leading zero) that `taken` says is free."""
    for _ in range(1000):
        low = 10 ** (GENERATED_NUMBER_DIGITS - 1)
        number = str(low + secrets.randbelow(9 * low))
        if not taken(number):
            return number
    raise RoomConflict("no free room number found; pass one")


def new_pin() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(GENERATED_PIN_DIGITS))

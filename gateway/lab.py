"""The gateway's side of the lab control API (``provisioning.api.context.LabControl``).

Thin adapters from HTTP-shaped calls to the built-in peers and the flood
guard, run on the event loop (the routes are ``async def``) so no lock is
needed around the state they touch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gateway.conference.rooms import RoomConflict
from provisioning.api.context import LabConflict

if TYPE_CHECKING:
    from gateway.builtin import BuiltinPeers
    from gateway.clock import Clock
    from gateway.counters import MemoryCounters
    from gateway.psap.server import PsapServer


class GatewayLab:
    def __init__(self, peers: BuiltinPeers, counters: MemoryCounters, clock: Clock,
                 psap: PsapServer | None = None, *, time_scale: float = 1.0) -> None:
        self._peers = peers
        self._counters = counters
        self._clock = clock  # protocol (real-second) time, as the flood guard counts
        self._scale = time_scale  # to show a ban's end on the simulated wall clock
        self._psap = psap

    # -- simulated PSTN ---------------------------------------------------------------------
    def pstn_rules(self) -> list[dict[str, Any]]:
        return [rule.to_dict() for rule in self._peers.pstn.rules.rules()]

    def set_pstn_rule(self, pattern: str, behaviour: str | dict[str, Any], note: str) -> dict[str, Any]:
        return self._peers.pstn.rules.set_rule(pattern, behaviour, note).to_dict()

    def delete_pstn_rule(self, pattern: str) -> bool:
        return self._peers.pstn.rules.remove_rule(pattern)

    def clear_pstn_rules(self) -> None:
        self._peers.pstn.rules.clear()

    def pstn_calls(self, number: str | None, limit: int) -> list[dict[str, Any]]:
        calls = self._peers.pstn.log.to_dicts(number=number) if number else self._peers.pstn.log.to_dicts()
        return calls[-limit:]

    def pstn_hang_up(self, call_id: str) -> bool:
        return self._peers.pstn.hang_up(call_id)

    # -- conference bridge (R30) --------------------------------------------------------------
    def conference_rooms(self, account_id: int | None) -> list[dict[str, Any]]:
        rooms = self._peers.conference.bridge.rooms()
        return [r.to_dict() for r in rooms if account_id is None or r.account_id == account_id]

    def create_conference_room(self, account_id: int, organizer: str, number: str | None, pin: str | None,
                               name: str | None) -> dict[str, Any]:
        try:
            room = self._peers.conference.bridge.create_room(organizer, number=number, pin=pin, name=name or "",
                                                             account_id=account_id)
        except RoomConflict as exc:
            raise LabConflict(str(exc), rule_id="R30") from exc
        return room.to_dict(include_pin=True)

    def conference_room(self, number: str) -> dict[str, Any] | None:
        room = self._peers.conference.bridge.room(number)
        return room.to_dict() if room is not None else None

    def delete_conference_room(self, number: str) -> bool:
        return self._peers.conference.bridge.delete_room(number)

    def conference_roster(self, number: str) -> list[dict[str, Any]] | None:
        roster = self._peers.conference.bridge.roster(number)
        return None if roster is None else [p.to_dict() for p in roster]

    def conference_kick(self, number: str, participant_id: str) -> bool:
        if not participant_id.isdigit():
            return False
        return self._peers.conference.bridge.kick(number, int(participant_id))

    # -- flood guard (R27) -----------------------------------------------------------------------
    def fraud_bans(self) -> list[dict[str, Any]]:
        now, wall = self._clock.now(), self._clock.wall()
        return [{"key": key, "until": (wall + timedelta(seconds=(until - now) * self._scale)).isoformat(),
                 "expires_in_s": round(until - now, 1),
                 "kind": "line" if key.startswith("src:") else "callee"}
                for key, until in sorted(self._counters.bans(now).items())]

    def clear_fraud_ban(self, key: str) -> bool:
        return self._counters.unban(key)

    # -- PSAP simulator -------------------------------------------------------------------------
    def psap_calls(self, role: str | None, verdict: str | None, device_id: str | None) -> list[dict[str, Any]]:
        if self._psap is None:
            return []
        return [c.to_dict() for c in self._psap.log.calls(role=role, verdict=verdict, device_id=device_id)]

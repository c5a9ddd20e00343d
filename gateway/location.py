"""The location service: which contacts each address of record is reachable at.

Bindings live in memory (the registrar is their single writer) and expire by
the injected clock.  An address of record here is a line's SIP username.
Expired bindings are dropped lazily on lookup and by a periodic sweep, so
the sweep's cost never sits on the request path.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.transport import Peer


@dataclass(slots=True)
class Binding:
    aor: str
    contact: str  # the Contact's URI as the phone sent it (requests go there)
    contact_raw: str  # the whole Contact value, for the 200 OK's contact list
    expires_at: float
    call_id: str
    cseq: int
    peer: Peer  # where the REGISTER came from: the flow requests are sent back over
    instance: str | None = None  # +sip.instance (RFC 5626), kept to recognise the same device
    reg_id: str | None = None
    user_agent: str | None = None
    q: float = 1.0
    registered_at: float = 0.0
    wall_registered_at: float = 0.0  # Unix time (a float: 100,000 ISO strings cost 7 MB)
    generation: int = 1  # the line's credential generation it registered with (R2 rotation ends it)
    registrar: str | None = None  # the registrar worker that took it, when not this process


class LocationService:
    def __init__(self) -> None:
        self._by_aor: dict[str, list[Binding]] = {}
        self._expiry: list[tuple[float, str]] = []  # heap of (expires_at, aor); lazily revalidated
        self._by_contact: dict[str, Binding] = {}  # contact URI → binding: in-dialog requests reuse the flow

    def lookup(self, aor: str, now: float) -> list[Binding]:
        bindings = self._by_aor.get(aor)
        if not bindings:
            return []
        live = [b for b in bindings if b.expires_at > now]
        if len(live) != len(bindings):
            self._set(aor, live, bindings)
        return live

    def by_contact(self, contact: str) -> Binding | None:
        """The binding whose Contact URI this is (to send over the phone's own flow)."""
        return self._by_contact.get(contact)

    def put(self, binding: Binding) -> None:
        """Add or refresh a binding (same contact URI, or same instance id, replaces).

        Memory (issue #6): phones of one model send one User-Agent and a lab's phones share a
        few hosts, so the binding is made to point at one shared string for each rather than
        its own copy (from the registrar and from a replicated copy alike)."""
        if binding.user_agent is not None:
            binding.user_agent = sys.intern(binding.user_agent)
        peer = binding.peer
        binding.peer = Peer(peer.proto, sys.intern(peer.host), peer.port, peer.conn)
        bindings = self._by_aor.setdefault(binding.aor, [])
        for i, old in enumerate(bindings):
            if old.contact == binding.contact or (binding.instance and old.instance == binding.instance):
                bindings[i] = binding
                if old.contact != binding.contact:
                    self._by_contact.pop(old.contact, None)
                break
        else:
            bindings.append(binding)
        self._by_contact[binding.contact] = binding
        heapq.heappush(self._expiry, (binding.expires_at, binding.aor))

    def remove(self, aor: str, contact: str) -> None:
        bindings = self._by_aor.get(aor)
        if bindings:
            self._set(aor, [b for b in bindings if b.contact != contact], bindings)

    def remove_all(self, aor: str) -> list[Binding]:
        removed = self._by_aor.pop(aor, [])
        for b in removed:
            if self._by_contact.get(b.contact) is b:
                del self._by_contact[b.contact]
        return removed

    def _set(self, aor: str, bindings: list[Binding], old: list[Binding]) -> None:
        keep = {id(b) for b in bindings}
        for b in old:
            if id(b) not in keep and self._by_contact.get(b.contact) is b:
                del self._by_contact[b.contact]
        if bindings:
            self._by_aor[aor] = bindings
        else:
            self._by_aor.pop(aor, None)

    def sweep(self, now: float) -> int:
        """Drop expired bindings; returns how many address-of-record entries were checked."""
        checked = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, aor = heapq.heappop(self._expiry)
            checked += 1
            self.lookup(aor, now)
        return checked

    def __iter__(self) -> Iterator[Binding]:
        for bindings in list(self._by_aor.values()):
            yield from list(bindings)

    def aors(self) -> list[str]:
        return list(self._by_aor)

    def count(self) -> int:
        return sum(len(b) for b in self._by_aor.values())

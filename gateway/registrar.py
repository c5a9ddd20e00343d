"""REGISTER processing (RFC 3261 §10.3) over the location service.

Pure over its inputs: a parsed request, where it came from, the directory
snapshot and the clock's ``now``; it returns the response to send.  The
activation rule R12 lives here because registration is where a phone first
meets the gateway: a device whose emergency location is not on file (not
activated) cannot register at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from e911.moves import NetworkFingerprint, fingerprint
from gateway.auth import Authenticator, Verdict
from gateway.location import Binding, LocationService
from gateway.sip.errors import ParseError
from gateway.sip.message import Request, Response
from gateway.sip.parser import build_response, local_tag
from gateway.sip.uri import SipURI
from gateway.transport import Peer
from provisioning.directory import DirectorySnapshot, LineEntry
from provisioning.events import R13_ONLY, Change

R12_REASON = "Device not activated: emergency location required (R12)"
#: seconds before a network fingerprint still missing from the snapshot is reported again (R13)
R13_REPORT_RETRY = 30.0


@dataclass(slots=True, frozen=True)
class RegistrarConfig:
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    #: contacts per address of record: each is a branch of every call, so this bounds call fan-out
    max_contacts: int = 10


def refusal_for_line(line: LineEntry, snapshot: DirectorySnapshot) -> tuple[int, str] | None:
    """Why this line may not register or call, or None.  Shared with the proxy."""
    account = snapshot.accounts.get(line.account_id)
    if account is not None and account.status != "active":
        return 403, "Account suspended (R11)"
    state = line.device_state
    if state == "active":
        return None
    if state in ("new", "located"):
        return 403, R12_REASON
    if state == "suspended":
        return 403, "Device suspended"
    return 403, "Device retired"


class Registrar:
    def __init__(self, config: RegistrarConfig, location: LocationService, auth: Authenticator) -> None:
        self.config = config
        self.location = location
        self.auth = auth
        #: R13: called with {device_id, fingerprint, at} when a device registers from another network
        #: than the snapshot remembers (the composition root queues it for the E911 store)
        self.on_fingerprint: Callable[[dict[str, Any]], None] | None = None
        self._fingerprints: dict[tuple[str, str], NetworkFingerprint] = {}  # parsing addresses costs
        #: R13: device id → (fingerprint, when) last handed to on_fingerprint, until the snapshot shows it
        self._reported: dict[int, tuple[NetworkFingerprint, float]] = {}
        self._date_cache: tuple[int, str] = (-1, "")

    def handle(
        self, req: Request, peer: Peer, snapshot: DirectorySnapshot, now: float, wall: datetime
    ) -> Response:
        result = self.auth.check(req, "authorization", snapshot, now)
        if result.verdict is Verdict.CHALLENGE or result.verdict is Verdict.STALE:
            stale = result.verdict is Verdict.STALE
            headers = [("WWW-Authenticate", c) for c in self.auth.challenges(now, stale=stale)]
            return build_response(req, 401, "Unauthorized", to_tag=local_tag(req), headers=headers)
        if result.verdict is Verdict.BAD_URI:
            return build_response(req, 400, "Digest uri does not match the Request-URI", to_tag=local_tag(req))
        if result.verdict is Verdict.FORBIDDEN:
            return build_response(req, 403, "Forbidden", to_tag=local_tag(req))
        line = result.line
        assert line is not None
        refusal = refusal_for_line(line, snapshot)
        if refusal is not None:
            return build_response(req, refusal[0], refusal[1], to_tag=local_tag(req))
        to_uri = req.to.uri
        if not isinstance(to_uri, SipURI) or (to_uri.user_unescaped or "") != line.sip_username:
            return build_response(req, 403, "Registration for another user refused", to_tag=local_tag(req))
        holder = self._licence_holder(line, snapshot, now)
        if holder is not None and (req.expires != 0 or req.contacts != "*"):
            return build_response(req, 403, "Concurrent licence in use by another user (R4)", to_tag=local_tag(req))
        aor = line.sip_username
        try:
            response = self._update_bindings(req, aor, peer, now, wall.timestamp(), line.credential_generation)
        except ParseError as exc:
            return build_response(req, 400, exc.reason, to_tag=local_tag(req))
        if response is not None:
            return response
        if self.on_fingerprint is not None:
            self._note_network(req, line, peer, snapshot, now, wall)
        return self._ok(req, aor, now, wall)

    def _note_network(self, req: Request, line: LineEntry, peer: Peer, snapshot: DirectorySnapshot,
                      now: float, wall: datetime) -> None:
        """R13: a device registering from a different network than last time may have moved.

        A fingerprint already handed over is not handed over again while the snapshot catches
        up (the write and the directory change take a moment): a 16-line phone registers its
        lines within milliseconds, and a lab's phones starting together would otherwise queue
        one write per line. After `R13_REPORT_RETRY` seconds it is reported again, so a record
        lost on the way is not lost for good.
        """
        contacts = req.contacts
        if contacts == "*" or not contacts or not isinstance(contacts[0].uri, SipURI):
            return
        key = (peer.host, contacts[0].uri.host)
        current = self._fingerprints.get(key)
        if current is None:
            if len(self._fingerprints) > 65536:
                self._fingerprints.clear()
            current = self._fingerprints[key] = fingerprint(*key)
        device_id = line.device_id
        device = snapshot.devices.get(device_id)
        if device is not None and device.last_fingerprint == current:
            self._reported.pop(device_id, None)
            return  # the common case: same network, nothing to write
        reported = self._reported.get(device_id)
        if reported is not None and reported[0] == current and now - reported[1] < R13_REPORT_RETRY:
            return  # on its way already
        if len(self._reported) > 65536:
            self._reported.clear()
        self._reported[device_id] = (current, now)
        assert self.on_fingerprint is not None
        self.on_fingerprint({"device_id": device_id, "fingerprint": current.as_dict(), "at": wall})

    def on_changes(self, changes: Sequence[Change], snapshot: DirectorySnapshot, now: float) -> int:
        """`on_change` for each change of a batch, but R13-only ones (a recorded network
        fingerprint cannot end a registration); returns how many bindings were dropped."""
        return sum(self.on_change(c, snapshot, now) for c in changes if c.kind not in R13_ONLY)

    def on_change(self, change: Change, snapshot: DirectorySnapshot, now: float) -> int:
        """After a provisioning change (on the loop): bindings that may no longer stand end at once.

        A line gone, a device no longer active, a suspended account, or
        credentials rotated by a reassignment (R2: the old holder's
        registrations end) all drop bindings.  A device change names its lines;
        the rarer account, user, line and licence changes check every bound
        address of record.  Returns how many bindings were dropped.
        """
        location = self.location
        if change.entity == "device":
            aors = [line.sip_username for line in snapshot.by_device.get(change.entity_id, ())]
        else:
            aors = location.aors()
        dropped = 0
        for aor in aors:
            line = snapshot.lines.get(aor)
            if line is None or refusal_for_line(line, snapshot) is not None:
                dropped += len(location.remove_all(aor))
                continue
            for binding in location.lookup(aor, now):
                if binding.generation != line.credential_generation:
                    location.remove(aor, binding.contact)
                    dropped += 1
        return dropped

    def _licence_holder(self, line: LineEntry, snapshot: DirectorySnapshot, now: float) -> str | None:
        """R4: the other user registered on this line's concurrent licence, if any."""
        if line.licence_kind != "concurrent" or line.licence_id is None:
            return None
        for other in snapshot.by_licence.get(line.licence_id, ()):
            if other.user_id != line.user_id and self.location.lookup(other.sip_username, now):
                return other.sip_username
        return None

    def _update_bindings(self, req: Request, aor: str, peer: Peer, now: float, wall: float,
                         generation: int) -> Response | None:
        contacts = req.contacts
        header_expires = req.expires
        call_id, cseq = req.call_id, req.cseq.seq
        if contacts == "*":
            if header_expires != 0:
                return build_response(req, 400, "Contact * requires Expires: 0", to_tag=local_tag(req))
            for binding in self.location.lookup(aor, now):
                if binding.call_id == call_id and cseq <= binding.cseq:
                    return build_response(req, 500, "Out of order CSeq", to_tag=local_tag(req))
            self.location.remove_all(aor)
            return None
        existing = {b.contact: b for b in self.location.lookup(aor, now)}
        user_agent = req.get("user-agent")  # LocationService.put shares it (and the host) between bindings
        plans: list[tuple[str, int, Binding | None, str, str | None, str | None, float]] = []
        for contact in contacts:
            if not isinstance(contact.uri, SipURI):
                return build_response(req, 400, "Only sip and sips contacts can be bound", to_tag=local_tag(req))
            raw_expires = contact.params.get("expires")
            if raw_expires is not None:
                if not raw_expires.isdigit():
                    raise ParseError("Malformed Contact expires")
                expires = int(raw_expires)
            elif header_expires is not None:
                expires = header_expires
            else:
                expires = self.config.default_expires
            if 0 < expires < self.config.min_expires:
                return build_response(
                    req, 423, "Interval Too Brief", to_tag=local_tag(req),
                    headers=[("Min-Expires", str(self.config.min_expires))],
                )
            expires = min(expires, self.config.max_expires)
            uri = str(contact.uri)
            old = existing.get(uri)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                return build_response(req, 500, "Out of order CSeq", to_tag=local_tag(req))
            q = _q_value(contact.params.get("q"))
            instance = contact.params.get("+sip.instance")
            plans.append((uri, expires, old, contact.raw, instance, contact.params.get("reg-id"), q))
        added = sum(1 for p in plans if p[2] is None and p[1] > 0 and not _same_instance(existing, p[4]))
        if len(existing) + added > self.config.max_contacts:
            return build_response(req, 403, f"Too many contacts (max {self.config.max_contacts})",
                                  to_tag=local_tag(req))
        for uri, expires, _old, raw, instance, reg_id, q in plans:
            if expires == 0:
                self.location.remove(aor, uri)
                continue
            self.location.put(
                Binding(
                    aor=aor, contact=uri, contact_raw=raw, expires_at=now + expires, call_id=call_id,
                    cseq=cseq, peer=peer, instance=instance, reg_id=reg_id, user_agent=user_agent, q=q,
                    registered_at=now, wall_registered_at=wall, generation=generation,
                )
            )
        return None

    def _date(self, wall: datetime) -> str:
        """The Date header value (RFC 3261 §20.17), formatted once per second rather than per 200."""
        second = int(wall.timestamp())
        cached = self._date_cache
        if cached[0] != second:
            cached = self._date_cache = (second, format_datetime(wall.replace(microsecond=0), usegmt=True))
        return cached[1]

    def _ok(self, req: Request, aor: str, now: float, wall: datetime) -> Response:
        headers = [("Contact", _contact_value(b, now)) for b in self.location.lookup(aor, now)]
        headers.append(("Date", self._date(wall)))
        return build_response(req, 200, "OK", to_tag=local_tag(req), headers=headers)


def _contact_value(b: Binding, now: float) -> str:
    """A binding as the 200 OK lists it: URI, remaining expiry, and the instance/reg-id it came with."""
    value = f"<{b.contact}>;expires={max(0, int(b.expires_at - now))}"
    if b.instance:
        value += f';+sip.instance="{b.instance}"'
    if b.reg_id:
        value += f";reg-id={b.reg_id}"
    return value


def _q_value(raw: str | None) -> float:
    """RFC 3261 §20.10 qvalue: 0 to 1 with up to three decimals."""
    if raw is None:
        return 1.0
    try:
        q = float(raw)
    except ValueError:
        raise ParseError("Malformed Contact q") from None
    if not 0.0 <= q <= 1.0:  # also refuses nan and inf
        raise ParseError("Malformed Contact q")
    return q


def _same_instance(existing: dict[str, Binding], instance: str | None) -> bool:
    return instance is not None and any(b.instance == instance for b in existing.values())

"""Bindings shared between the main process and its registrar workers.

Every process keeps a whole copy of the location service, because the
main process routes calls to any registered phone and a worker needs every
binding of a licence to enforce R4.  A copy reports its own changes (a
REGISTER handled here, a drop ordered by provisioning) as *operations*; the
others apply them without reporting them again.  Times travel as offsets
from the sender's "now" because each process's protocol clock has its own
origin.  Expiry is not replicated: every copy drops an expired binding by
itself at the same moment.

``Channel`` frames what crosses a main↔worker stream socket: a type byte,
a length and a payload.  A stream (not datagrams) because a burst of
REGISTERs must queue, not be dropped by a ten-deep datagram queue.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import struct
from collections.abc import Callable
from typing import Any

from gateway.location import Binding, LocationService
from gateway.transport import Peer

log = logging.getLogger("voiplab.replication")

Op = tuple[Any, ...]

# message types on a channel
SIP = b"M"  # a SIP message as received from a peer (main → worker) or to forward (worker → main)
BINDING = b"B"  # a location operation
CHANGE = b"C"  # a provisioning change (main → worker)
FINGERPRINT = b"F"  # an R13 network fingerprint for the E911 store (worker → main)
READY = b"R"  # worker → main: listening and loaded

_HEAD = struct.Struct("!cI")


class ReplicatedLocation(LocationService):
    """A location service that reports its own changes through ``on_op``."""

    def __init__(self, now: Callable[[], float], on_op: Callable[[Op], None] | None = None) -> None:
        super().__init__()
        self._now = now
        self.on_op = on_op

    def put(self, binding: Binding) -> None:
        super().put(binding)
        if self.on_op is not None:
            self.on_op(("put", pack_binding(binding, self._now())))

    def remove(self, aor: str, contact: str) -> None:
        super().remove(aor, contact)
        if self.on_op is not None:
            self.on_op(("remove", aor, contact))

    def remove_all(self, aor: str) -> list[Binding]:
        removed = super().remove_all(aor)
        if removed and self.on_op is not None:
            self.on_op(("remove_all", aor))
        return removed

    def apply(self, op: Op, origin: str | None = None) -> None:
        """Apply another copy's operation, without reporting it again."""
        kind = op[0]
        if kind == "put":
            b = unpack_binding(op[1], self._now())
            if origin is not None:
                b.registrar = origin
            LocationService.put(self, b)
        elif kind == "remove":
            LocationService.remove(self, op[1], op[2])
        elif kind == "remove_all":
            LocationService.remove_all(self, op[1])
        else:
            log.warning("unknown location operation %r", kind)


# A binding crosses the channel as a flat tuple of plain values, not as the dataclass: pickling
# a slotted dataclass goes through its reduce protocol, about 13 µs to dump and 14 µs to load
# per binding against 1.5 and 1.9 µs for the tuple, and every REGISTER's binding is dumped
# once and loaded in every other process (issue #6, registrar workers' profile).
PackedBinding = tuple[Any, ...]


def pack_binding(b: Binding, now: float) -> PackedBinding:
    """`b` with its times made relative to `now` (each process's protocol clock has its own origin)."""
    p = b.peer
    return (b.aor, b.contact, b.contact_raw, b.expires_at - now, b.call_id, b.cseq, p.proto, p.host, p.port, p.conn,
            b.instance, b.reg_id, b.user_agent, b.q, b.registered_at - now, b.wall_registered_at, b.generation,
            b.registrar)


def unpack_binding(packed: PackedBinding, now: float) -> Binding:
    """The binding `pack_binding` packed, its times on this process's clock (`now`)."""
    (aor, contact, contact_raw, expires_in, call_id, cseq, proto, host, port, conn, instance, reg_id, user_agent,
     q, registered_ago, wall, generation, registrar) = packed
    return Binding(aor=aor, contact=contact, contact_raw=contact_raw, expires_at=expires_in + now,
                   call_id=call_id, cseq=cseq, peer=Peer(proto, host, port, conn), instance=instance,
                   reg_id=reg_id, user_agent=user_agent, q=q, registered_at=registered_ago + now,
                   wall_registered_at=wall, generation=generation, registrar=registrar)


def encode_sip(data: bytes, peer: Peer) -> bytes:
    return f"{peer.proto}\0{peer.host}\0{peer.port}\0{peer.conn}\0".encode() + data


def decode_sip(payload: bytes) -> tuple[bytes, Peer]:
    proto, host, port, conn, data = payload.split(b"\0", 4)
    return data, Peer(proto.decode(), host.decode(), int(port), int(conn))


class Channel(asyncio.Protocol):
    """One end of a main↔worker stream: ``send(kind, payload)`` and a callback per frame."""

    def __init__(self, on_frame: Callable[[bytes, bytes], None],
                 on_lost: Callable[[], None] | None = None) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None
        # frames queued during one turn of the loop leave in one write: under load that is one
        # syscall and one wake-up of the other process for many frames, not one per frame
        self._out: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # driven by hand (tests): write at once
            self._loop = None

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        size = _HEAD.size
        start = 0
        end = len(buf)
        while end - start >= size:
            kind, length = _HEAD.unpack_from(buf, start)
            if end - start - size < length:
                break
            payload = bytes(buf[start + size:start + size + length])
            start += size + length
            try:
                self._on_frame(kind, payload)
            except Exception:
                log.exception("error handling a %r frame", kind)
        if start:
            del buf[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._on_lost is not None:
            self._on_lost()

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(self, kind: bytes, payload: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        frame = _HEAD.pack(kind, len(payload)) + payload
        if self._loop is None:
            transport.write(frame)
            return True
        out = self._out
        out.append(frame)
        if len(out) == 1:
            self._loop.call_soon(self._flush)
        return True

    def _flush(self) -> None:
        out, self._out = self._out, []
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(b"".join(out))

    def send_obj(self, kind: bytes, obj: object) -> bool:
        return self.send(kind, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def load(payload: bytes) -> Any:
    """Unpickle a frame from our own processes (the channel is a socketpair, never a network)."""
    return pickle.loads(payload)

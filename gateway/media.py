"""RTP echo for the built-in peers: every RTP packet received goes back to where it came from.

Why an echo and not a tone or a mixer: it proves the whole media path (SDP
addresses through the gateway, NAT-less loopback, codecs agreed) with no
audio code at all, and a real phone calling the simulated PSTN hears itself
with the round-trip delay, which is what a lab wants to hear.

What is sent back, and why not byte for byte:

- RTP (version 2, not RTCP) goes back with the *SSRC changed* (XOR with a
  constant). A phone that receives its own SSRC from another address may
  take it for an SSRC collision or a loop (RFC 3550 §8.2) and change its
  own; a distinct, stable SSRC per caller looks like an ordinary peer.
  Sequence numbers and timestamps stay the caller's (they are monotonic).
- RTCP is counted, not echoed: an echoed sender report would describe the
  phone's own stream as ours.
- Anything that is not RTP (wrong version, shorter than the 12-byte header)
  is counted as ignored.

`echo=False` makes the same socket a sink (the PSAP simulator's media: a
caller's RTP meets an open port instead of ICMP port-unreachable).
One socket serves every call of a peer: replies go to each packet's
source, so concurrent calls do not mix.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from dataclasses import dataclass

log = logging.getLogger("voiplab.media")

Address = tuple[str, int]
#: XORed into the SSRC of echoed packets
SSRC_MASK = 0x5EC0_0ECE
RTP_HEADER = 12


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: RTCP packet types 192–223 sit where RTP has marker + payload type."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def echo_packet(data: bytes) -> bytes | None:
    """The packet to send back for `data`, or None when it is not RTP to echo."""
    if len(data) < RTP_HEADER or data[0] >> 6 != 2 or is_rtcp(data):
        return None
    ssrc = int.from_bytes(data[8:12], "big") ^ SSRC_MASK
    return data[:8] + ssrc.to_bytes(4, "big") + data[12:]


@dataclass(slots=True)
class MediaCounts:
    """Packets seen from one source address."""

    received: int = 0
    echoed: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"received": self.received, "echoed": self.echoed}


class RtpEcho(asyncio.DatagramProtocol):
    """A UDP socket that echoes RTP (or swallows everything with `echo=False`), with counters."""

    def __init__(self, *, echo: bool = True, max_sources: int = 4096) -> None:
        self.echo = echo
        self.max_sources = max_sources
        self.transport: asyncio.DatagramTransport | None = None
        self.received = 0
        self.echoed = 0
        self.ignored = 0
        self._sources: OrderedDict[Address, MediaCounts] = OrderedDict()
        self.host = ""
        self.port = 0

    # -- asyncio -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        source = (addr[0], addr[1])
        self.received += 1
        counts = self._counts(source)
        counts.received += 1
        if not self.echo:
            return
        reply = echo_packet(data)
        if reply is None:
            self.ignored += 1
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.sendto(reply, addr)
            self.echoed += 1
            counts.echoed += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket %s: %s", self.port, exc)  # ICMP unreachable from a caller that left

    # -- API -----------------------------------------------------------------------------------
    def counts(self, source: Address) -> MediaCounts:
        """What came from `source` (zeros when nothing did)."""
        found = self._sources.get(source)
        return MediaCounts(found.received, found.echoed) if found is not None else MediaCounts()

    @classmethod
    async def start(cls, host: str = "127.0.0.1", port: int = 0, *, echo: bool = True) -> RtpEcho:
        """Bind UDP `host:port` (0: any free port) and serve."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: cls(echo=echo), local_addr=(host, port), family=family)
        protocol.host = host
        protocol.port = transport.get_extra_info("sockname")[1]
        return protocol

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _counts(self, source: Address) -> MediaCounts:
        counts = self._sources.get(source)
        if counts is None:
            counts = self._sources[source] = MediaCounts()
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        return counts

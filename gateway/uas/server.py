"""asyncio UDP glue for the built-in peers: one SIP socket, one RTP echo (or sink) socket.

Why their own sockets instead of the gateway's `Transports`: a built-in peer
is a separate SIP node (its own address, its own transactions); sharing the
gateway's sockets would make it a part of the gateway rather than a peer the
gateway must reach correctly.

`PeerSockets` is what every built-in peer (PSTN, conference, PSAP) opens;
`UasServer` runs a plain `UserAgentServer` on them with any `decide`:

    server = await UasServer.start("127.0.0.1", 0, decide=lambda req, src: Answer(), clock=clock)
    ... route calls to server.uri ...
    await server.close()
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.clock import Clock, LoopClock
from gateway.media import RtpEcho
from gateway.uas.agent import Decide, UserAgentServer
from gateway.uas.call import Address, UasCall

logger = logging.getLogger("voiplab.uas")

Handler = Callable[[bytes, Address], None]


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        if self.handler is None or (len(data) <= 4 and not data.strip()):
            return  # not attached yet, or a CRLF keep-alive
        self.handler(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        logger.debug("built-in peer SIP socket error: %s", exc)


@dataclass(slots=True, eq=False)
class PeerSockets:
    """A SIP UDP socket and an RTP socket beside it; `host` is the address to advertise."""

    host: str
    port: int
    media: RtpEcho
    _sip: asyncio.DatagramTransport
    _protocol: _SipProtocol

    @property
    def media_port(self) -> int:
        return self.media.port

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0, *, echo: bool = True,
                   advertise: str | None = None) -> PeerSockets:
        """Bind UDP `host:port` (0: any free port) for SIP and a free port for RTP on the same host.

        `advertise` is the address put in Contact, Via and SDP when `host` is
        a wildcard (0.0.0.0 / ::); by default `host` itself.
        """
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sip, protocol = await loop.create_datagram_endpoint(_SipProtocol, local_addr=(host, port), family=family)
        try:
            media = await RtpEcho.start(host, 0, echo=echo)
        except OSError:
            sip.close()
            raise
        bound = sip.get_extra_info("sockname")[1]
        return cls(advertise or host, bound, media, sip, protocol)

    def send(self, data: bytes, addr: Address) -> None:
        if not self._sip.is_closing():
            self._sip.sendto(data, addr)

    def attach(self, handler: Handler) -> None:
        """Start delivering SIP datagrams to `handler` (a sans-IO core's `on_datagram`)."""
        self._protocol.handler = handler

    async def close(self) -> None:
        self._protocol.handler = None
        self._sip.close()
        self.media.close()
        await asyncio.sleep(0)


def uri_for(user: str, host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"sip:{user}@{host}:{port}"


class ListensOn:
    """Where a running built-in peer listens (the address the gateway routes to), from its sockets."""

    __slots__ = ()
    sockets: PeerSockets

    @property
    def host(self) -> str:
        return self.sockets.host

    @property
    def port(self) -> int:
        return self.sockets.port

    @property
    def media_port(self) -> int:
        return self.sockets.media_port


@dataclass(slots=True, eq=False)
class UasServer(ListensOn):
    """A running generic UAS: `agent` decides with the callback it was given."""

    agent: UserAgentServer
    sockets: PeerSockets

    @property
    def uri(self) -> str:
        return self.agent.uri

    def calls(self) -> list[UasCall]:
        return self.agent.calls()

    @classmethod
    async def start(cls, host: str = "127.0.0.1", port: int = 0, *, decide: Decide, clock: Clock | None = None,
                    echo: bool = True, advertise: str | None = None, **options: Any) -> UasServer:
        """Bind and serve; `options` go to `UserAgentServer` (user, timers, on_change, …).

        `clock` in-process is the gateway clock's protocol view (real seconds,
        ``gateway.clock.protocol_view``), like the phones' own timers.
        """
        sockets = await PeerSockets.open(host, port, echo=echo, advertise=advertise)
        agent = UserAgentServer(clock=clock if clock is not None else LoopClock(asyncio.get_running_loop()),
                                send=sockets.send, host=sockets.host, port=sockets.port,
                                media_port=sockets.media_port, decide=decide, **options)
        sockets.attach(agent.on_datagram)
        logger.info("UAS %s on udp:%s:%s (media %s)", agent.user, host, sockets.port, sockets.media_port)
        return cls(agent, sockets)

    async def close(self) -> None:
        self.agent.close()
        await self.sockets.close()

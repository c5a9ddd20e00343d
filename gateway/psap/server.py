"""asyncio UDP glue for the PSAP simulator: one SIP socket, one RTP sink socket, the UAS between.

Why its own glue instead of the gateway's `Transports`: the simulator is a
separate SIP node (its own address, its own transactions); sharing the
gateway's sockets would make it a part of the gateway rather than a peer
the gateway must reach correctly.

In-process: ``server = await PsapServer.start("127.0.0.1", 0, lookup=…, clock=clock)``
and route emergency calls to ``server.port``. Standalone: ``python -m gateway.psap``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from e911.pidf import PidfValidator
from gateway.clock import Clock, LoopClock
from gateway.psap.checks import PsapConfig
from gateway.psap.log import ExpectedLocations, ExpectedLookup, PsapLog
from gateway.psap.uas import Address, PsapUas
from gateway.sip.transaction import DEFAULT_TIMERS, Timers

logger = logging.getLogger("voiplab.psap")


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.uas: PsapUas | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        if self.uas is None or (len(data) <= 4 and not data.strip()):
            return  # not started yet, or a CRLF keep-alive
        self.uas.on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        logger.debug("PSAP simulator socket error: %s", exc)


class _Sink(asyncio.DatagramProtocol):
    """Swallows the caller's RTP so it meets an open port."""

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        return None


@dataclass(slots=True)
class PsapServer:
    """A running PSAP simulator: `host`/`port` to route to, `log` to read verdicts from."""

    uas: PsapUas
    host: str
    port: int
    media_port: int
    _sip: asyncio.DatagramTransport
    _media: asyncio.DatagramTransport

    @property
    def log(self) -> PsapLog:
        return self.uas.log

    @property
    def uri(self) -> str:
        """Where to send emergency calls (legacy / test requests use their own R-URI on this address)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:psap@{host}:{self.port}"

    @property
    def national_centre_uri(self) -> str:
        """R-URI that selects the national emergency call centre role (R15, no location expected)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{self.uas.config.ecrc_user}@{host}:{self.port}"

    @classmethod
    async def start(cls, host: str = "127.0.0.1", port: int = 0, *, lookup: ExpectedLookup | None = None,
                    config: PsapConfig | None = None, log: PsapLog | None = None,
                    validator: PidfValidator | None = None, clock: Clock | None = None,
                    timers: Timers = DEFAULT_TIMERS) -> PsapServer:
        """Bind UDP `host:port` (0: any free port) and a media sink beside it, then serve.

        `lookup` gives each device's registered location (default: an empty
        `ExpectedLocations`, so every location check fails until fed);
        `clock` should be the gateway's clock in-process, so SIP timers and
        PIDF-LO timestamps agree under `--time-scale`.
        """
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sip_transport, protocol = await loop.create_datagram_endpoint(
            _SipProtocol, local_addr=(host, port), family=family)
        try:
            media_transport, _ = await loop.create_datagram_endpoint(
                _Sink, local_addr=(host, 0), family=family)
        except OSError:
            sip_transport.close()
            raise
        bound = sip_transport.get_extra_info("sockname")[1]
        media_port = media_transport.get_extra_info("sockname")[1]

        def send(data: bytes, addr: Address) -> None:
            if not sip_transport.is_closing():
                sip_transport.sendto(data, addr)

        uas = PsapUas(clock=clock if clock is not None else LoopClock(loop), send=send, host=host, port=bound,
                      media_port=media_port, config=config if config is not None else PsapConfig(),
                      lookup=lookup if lookup is not None else ExpectedLocations().get,
                      log=log if log is not None else PsapLog(),  # an empty log is falsy: no `or`
                      validator=validator if validator is not None else PidfValidator(), timers=timers)
        protocol.uas = uas
        logger.info("PSAP simulator on udp:%s:%s (media sink %s)", host, bound, media_port)
        return cls(uas, host, bound, media_port, sip_transport, media_transport)

    async def close(self) -> None:
        self.uas.close()
        self._sip.close()
        self._media.close()
        await asyncio.sleep(0)

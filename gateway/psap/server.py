"""asyncio glue for the PSAP simulator: the built-in peers' sockets (SIP + an RTP sink), the UAS between.

Why its own node instead of the gateway's `Transports`: the simulator is a
separate SIP node (its own address, its own transactions); sharing the
gateway's sockets would make it a part of the gateway rather than a peer
the gateway must reach correctly. The sockets are `gateway.uas.PeerSockets`,
the same every built-in peer opens.

In-process: ``server = await PsapServer.start("127.0.0.1", 0, lookup=…, clock=clock)``
and route emergency calls to ``server.port``. Standalone: ``python -m gateway.psap``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from e911.pidf import PidfValidator
from gateway.clock import Clock, LoopClock
from gateway.psap.checks import PsapConfig
from gateway.psap.log import ExpectedLocations, ExpectedLookup, PsapLog
from gateway.psap.uas import PsapUas
from gateway.sip.transaction import DEFAULT_TIMERS, Timers
from gateway.uas.server import PeerSockets

logger = logging.getLogger("voiplab.psap")


@dataclass(slots=True)
class PsapServer:
    """A running PSAP simulator: `host`/`port` to route to, `log` to read verdicts from."""

    uas: PsapUas
    host: str
    port: int
    media_port: int
    _sockets: PeerSockets

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
        sockets = await PeerSockets.open(host, port, echo=False)  # media: a sink

        bound, media_port = sockets.port, sockets.media_port
        clock = clock if clock is not None else LoopClock(asyncio.get_running_loop())
        uas = PsapUas(clock=clock, send=sockets.send, host=host, port=bound, media_port=media_port, config=config if config is not None else PsapConfig(),
                      lookup=lookup if lookup is not None else ExpectedLocations().get,
                      log=log if log is not None else PsapLog(),  # an empty log is falsy: no `or`
                      validator=validator if validator is not None else PidfValidator(), timers=timers)
        sockets.attach(uas.on_datagram)
        logger.info("PSAP simulator on udp:%s:%s (media sink %s)", host, bound, media_port)
        return cls(uas, host, bound, media_port, sockets)

    async def close(self) -> None:
        self.uas.close()
        await self._sockets.close()

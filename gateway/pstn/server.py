"""asyncio glue for the simulated PSTN: the built-in peers' sockets (SIP + RTP echo) around `PstnSimulator`.

In-process (the composition root)::

    pstn = await PstnServer.start("127.0.0.1", 0, clock=clock)
    route E.164 destinations not on the platform to pstn.route_uri("+14155550100")
    pstn.rules.set_rule("*0486", "busy")        # the HTTP API's handle
    pstn.log.to_dicts()                          # GET /api/v1/pstn/calls
    await pstn.close()
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.clock import Clock, LoopClock
from gateway.pstn.log import PstnCall, PstnLog
from gateway.pstn.rules import RuleBook
from gateway.pstn.simulator import PstnSimulator
from gateway.sip.transaction import DEFAULT_TIMERS, Timers
from gateway.uas.server import ListensOn, PeerSockets, uri_for

logger = logging.getLogger("voiplab.pstn")


@dataclass(slots=True, eq=False)
class PstnServer(ListensOn):
    """A running simulated PSTN: `host`/`port` to route to, `rules` to steer it, `log` to read."""

    sim: PstnSimulator
    sockets: PeerSockets

    @property
    def rules(self) -> RuleBook:
        return self.sim.rules

    @property
    def log(self) -> PstnLog:
        return self.sim.log

    def calls(self) -> list[PstnCall]:
        return self.sim.calls()

    def hang_up(self, call_id: str, reason: str | None = None) -> bool:
        return self.sim.hang_up(call_id, reason)

    def route_uri(self, e164: str) -> str:
        """The Request-URI the gateway sends a call for `e164` with (``sip:+14155550100@host:port``)."""
        return uri_for(e164, self.host, self.port)

    @classmethod
    async def start(cls, host: str = "127.0.0.1", port: int = 0, *, clock: Clock | None = None,
                    rules: RuleBook | None = None, log: PstnLog | None = None, timers: Timers = DEFAULT_TIMERS,
                    advertise: str | None = None, max_call: float = 4 * 3600.0) -> PstnServer:
        """Bind UDP `host:port` (0: any free port) and an RTP echo beside it, then serve.

        `clock` in-process is the gateway clock's protocol view (real seconds,
        ``gateway.clock.protocol_view``): ring and hang-up delays are real time.
        """
        sockets = await PeerSockets.open(host, port, echo=True, advertise=advertise)
        sim = PstnSimulator(clock=clock if clock is not None else LoopClock(asyncio.get_running_loop()),
                            send=sockets.send, host=sockets.host, port=sockets.port,
                            media_port=sockets.media_port, rules=rules, log=log, timers=timers,
                            max_call=max_call)
        sim.log.media = sockets.media.counts
        sockets.attach(sim.on_datagram)
        logger.info("simulated PSTN on udp:%s:%s (RTP echo %s)", host, sockets.port, sockets.media_port)
        return cls(sim, sockets)

    async def close(self) -> None:
        """Hang up the calls still up (BYE), then close the sockets."""
        self.sim.close()
        await self.sockets.close()

"""asyncio glue for the conference bridge: the built-in peers' sockets (SIP + RTP echo or sink).

In-process (the composition root)::

    conf = await ConferenceServer.start("127.0.0.1", 0, clock=clock, max_participants=plan.conference_max)
    room = conf.bridge.create_room("ann.lee")          # the HTTP API's handle: rooms, roster, kick
    route a dialled "<room>" or "<room>*<pin>" to conf.route_uri(dialled)
    await conf.close()
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.clock import Clock, LoopClock
from gateway.conference.bridge import DEFAULT_MAX_PARTICIPANTS, ConferenceBridge
from gateway.conference.rooms import RoomStore
from gateway.sip.transaction import DEFAULT_TIMERS, Timers
from gateway.uas.server import ListensOn, PeerSockets

logger = logging.getLogger("voiplab.conference")


@dataclass(slots=True, eq=False)
class ConferenceServer(ListensOn):
    """A running bridge: `host`/`port` to route to, `bridge` for rooms and rosters."""

    bridge: ConferenceBridge
    sockets: PeerSockets

    def route_uri(self, dialled: str) -> str | None:
        """Where the gateway sends a call for `dialled` (``<room>[*<pin>]``), or None: not a room."""
        return self.bridge.route_uri(dialled, self.host, self.port)

    @classmethod
    async def start(cls, host: str = "127.0.0.1", port: int = 0, *, clock: Clock | None = None,
                    store: RoomStore | None = None, max_participants: int = DEFAULT_MAX_PARTICIPANTS,
                    echo: bool = True, answer_delay: float = 0.0, timers: Timers = DEFAULT_TIMERS,
                    advertise: str | None = None) -> ConferenceServer:
        """Bind UDP `host:port` (0: any free port) and an RTP echo (or sink: `echo=False`), then serve."""
        sockets = await PeerSockets.open(host, port, echo=echo, advertise=advertise)
        try:
            bridge = ConferenceBridge(
                clock=clock if clock is not None else LoopClock(asyncio.get_running_loop()), send=sockets.send,
                host=sockets.host, port=sockets.port, media_port=sockets.media_port, store=store,
                max_participants=max_participants, answer_delay=answer_delay, timers=timers)
        except ValueError:
            await sockets.close()
            raise
        sockets.attach(bridge.on_datagram)
        logger.info("conference bridge on udp:%s:%s (media %s)", host, sockets.port, sockets.media_port)
        return cls(bridge, sockets)

    async def close(self) -> None:
        """Hang up every connection (BYE), then close the sockets."""
        self.bridge.close()
        await self.sockets.close()

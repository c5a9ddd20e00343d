"""The built-in peers the gateway routes to: simulated PSTN trunk and conference bridge.

Each is a real SIP user agent on its own loopback UDP port in the same
process (runnable alone too: ``python -m gateway.pstn``), so the proxy treats
them like any other next hop and a lab can watch the traffic on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clock import Clock
from gateway.conference.server import ConferenceServer
from gateway.proxy import BuiltinRoutes
from gateway.pstn.server import PstnServer
from gateway.transport import Peer

#: OpenVoice's per-conference connection cap (R30) when no plan says otherwise
DEFAULT_CONFERENCE_MAX = 500


@dataclass(slots=True)
class BuiltinPeers:
    pstn: PstnServer
    conference: ConferenceServer

    @classmethod
    async def start(cls, host: str, clock: Clock, *, conference_max: int = DEFAULT_CONFERENCE_MAX) -> BuiltinPeers:
        pstn = await PstnServer.start(host, 0, clock=clock)
        try:
            conference = await ConferenceServer.start(host, 0, clock=clock, max_participants=conference_max)
        except BaseException:
            await pstn.close()
            raise
        return cls(pstn, conference)

    def routes(self) -> BuiltinRoutes:
        return BuiltinRoutes(
            pstn=self.pstn.route_uri, pstn_peer=Peer("udp", self.pstn.host, self.pstn.port),
            conference=self.conference.route_uri,
            conference_peer=Peer("udp", self.conference.host, self.conference.port),
        )

    async def close(self) -> None:
        await self.conference.close()
        await self.pstn.close()

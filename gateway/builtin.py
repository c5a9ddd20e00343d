"""The built-in peers the gateway routes to: simulated PSTN trunk, conference bridge, PSAP.

Each is a real SIP user agent on its own loopback UDP port in the same
process (runnable alone too: ``python -m gateway.pstn``), so the proxy treats
them like any other next hop and a lab can watch the traffic on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clock import Clock
from gateway.conference.server import ConferenceServer
from gateway.proxy import BuiltinRoutes
from gateway.psap.log import ExpectedLookup, PsapLog
from gateway.psap.server import PsapServer
from gateway.pstn.server import PstnServer
from gateway.transport import Peer

#: OpenVoice's per-conference connection cap (R30) when no plan says otherwise
DEFAULT_CONFERENCE_MAX = 500


@dataclass(slots=True)
class BuiltinPeers:
    pstn: PstnServer
    conference: ConferenceServer
    psap: PsapServer

    @classmethod
    async def start(cls, host: str, clock: Clock, *, psap_lookup: ExpectedLookup, psap_log: PsapLog,
                    conference_max: int = DEFAULT_CONFERENCE_MAX) -> BuiltinPeers:
        started: list[PstnServer | ConferenceServer | PsapServer] = []
        try:
            pstn = await PstnServer.start(host, 0, clock=clock)
            started.append(pstn)
            conference = await ConferenceServer.start(host, 0, clock=clock, max_participants=conference_max)
            started.append(conference)
            psap = await PsapServer.start(host, 0, lookup=psap_lookup, log=psap_log, clock=clock)
        except BaseException:
            for server in started:
                await server.close()
            raise
        return cls(pstn, conference, psap)

    def routes(self) -> BuiltinRoutes:
        return BuiltinRoutes(
            pstn=self.pstn.route_uri, pstn_peer=Peer("udp", self.pstn.host, self.pstn.port),
            conference=self.conference.route_uri,
            conference_peer=Peer("udp", self.conference.host, self.conference.port),
            psap_peer=Peer("udp", self.psap.host, self.psap.port), national_centre=self.psap.national_centre_uri,
        )

    async def close(self) -> None:
        await self.psap.close()
        await self.conference.close()
        await self.pstn.close()

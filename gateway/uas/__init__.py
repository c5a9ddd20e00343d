"""A generic built-in SIP user agent server (the base of the PSTN, PSAP and conference peers).

- `decision`: what to do with an INVITE (`Answer`, `Reject`, `Ring`).
- `agent.UserAgentServer`: the sans-IO UAS (transactions, dialogs, 2xx
  retransmission, CANCEL, our own BYE along the route set), fed datagrams
  and a clock.
- `dialog`: UAS dialog state and in-dialog request building (RFC 3261 §12).
- `sdp`: the SDP answer every built-in peer gives.
- `server`: asyncio glue (`PeerSockets`, `UasServer.start(host, port, decide=…)`).
"""

from gateway.uas.agent import ALLOW, Decide, UserAgentServer
from gateway.uas.call import UasCall
from gateway.uas.decision import Answer, Decision, Reject, Ring
from gateway.uas.server import PeerSockets, UasServer

__all__ = [
    "ALLOW",
    "Answer",
    "Decide",
    "Decision",
    "PeerSockets",
    "Reject",
    "Ring",
    "UasCall",
    "UasServer",
    "UserAgentServer",
]

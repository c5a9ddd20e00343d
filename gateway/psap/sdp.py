"""The PSAP simulator's SDP answer: the built-in peers' answer (`gateway.uas.sdp`) under the PSAP's name.

Why so little: the simulator judges signalling; it never plays or records
audio. It still answers with a real port (a sink socket the server opens)
so that a caller's RTP does not bounce off ICMP port-unreachable.
"""

from __future__ import annotations

from gateway.uas.sdp import answer_sdp as _answer_sdp

ORIGIN = "voiplab-psap"
SESSION_NAME = "voiplab PSAP simulator"


def answer_sdp(offer: bytes | None, host: str, port: int, session_id: int = 1) -> bytes:
    """An SDP answer to `offer` (or an offer of our own when there is none, for an ACK answer).

    Picks PCMU or PCMA from the first audio stream, mirrors telephone-event,
    keeps the offer's transport profile; every other stream is refused with
    port 0 as RFC 3264 §6 requires (one m= line per offered m= line).
    """
    return _answer_sdp(offer, host, port, session_id, origin=ORIGIN, session_name=SESSION_NAME)

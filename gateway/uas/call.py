"""One call a built-in user agent server received, as the API shows it (`UserAgentServer.calls()`).

Why a record beside the dialog: the dialog is protocol state (tags, route
set, CSeq) that disappears with the call; the record is what a lab reads
("who called, what did we do, how did it end") and what the peers' own logs
(PSTN call log, PSAP verdicts, conference roster) are built from through
the agent's `on_change` notifications.

States (one way, left to right; the last four are terminal)::

    ringing ──► answered ──► confirmed ──► ended
       │            └──────► no_ack        (2xx never acknowledged)
       ├──► rejected   (a final >= 300 we chose)
       └──► cancelled  (CANCEL before the final: 487)
    failed: the decide callback raised (500)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.uas.decision import Decision

RINGING = "ringing"
ANSWERED = "answered"
CONFIRMED = "confirmed"
REJECTED = "rejected"
CANCELLED = "cancelled"
ENDED = "ended"
NO_ACK = "no_ack"
FAILED = "failed"

LIVE_STATES = frozenset({RINGING, ANSWERED, CONFIRMED})
TERMINAL_STATES = frozenset({REJECTED, CANCELLED, ENDED, NO_ACK, FAILED})

Address = tuple[str, int]


@dataclass(slots=True, eq=False)
class UasCall:
    """A call from its INVITE to its end; mutated by the agent only."""

    id: int
    call_id: str
    local_tag: str
    remote_tag: str | None
    request_uri: str
    from_: str  # the From header value as received
    to: str  # the To header value as received
    source: Address  # where the INVITE came from
    decision: Decision
    received_at: datetime
    state: str = RINGING
    status: int | None = None  # the final status we sent
    reason: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None  # bye | hangup | cancel | no_ack | timeout | closed
    bye_status: int | None = None  # the answer to our own BYE (408: none came)
    offer: bytes | None = None  # the caller's SDP
    answer: bytes | None = None  # ours

    @property
    def context(self) -> object:
        return self.decision.context

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def duration(self) -> float | None:
        """Seconds from answer to end (or to now-ish: None while the call is still up)."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.answered_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API."""
        return {
            "id": self.id, "call_id": self.call_id, "request_uri": self.request_uri, "from": self.from_,
            "to": self.to, "source": f"{self.source[0]}:{self.source[1]}", "state": self.state,
            "decision": self.decision.describe(), "status": self.status, "reason": self.reason,
            "received_at": self.received_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "ended_by": self.ended_by, "bye_status": self.bye_status, "duration": self.duration(),
        }

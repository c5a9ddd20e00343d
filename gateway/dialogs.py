"""What the proxy must remember of a confirmed call to end it itself.

A record-routing proxy normally only relays BYEs.  To enforce a duration cap
(R20) or a dead session (RFC 4028) it has to *originate* a BYE toward each
leg, as Kamailio's dialog module does: for that it keeps both ends' targets,
the From/To values with their tags, and the highest CSeq each side has used,
so each BYE it sends is in sequence for the UA receiving it.

Pure data and builders; sending goes through the core's client transactions.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sip.message import Request
from gateway.transport import Peer


@dataclass(slots=True)
class Leg:
    target: str  # remote target URI (the Contact this side gave)
    peer: Peer  # where requests for it go (its flow)
    cseq: int  # highest CSeq this side has sent in the dialog


@dataclass(slots=True)
class DialogInfo:
    call_id: str
    caller_from: str  # the caller's From value, with its tag
    callee_to: str  # the To value of the kept 2xx, with the callee's tag
    caller_tag: str | None
    callee_tag: str | None
    caller: Leg
    callee: Leg
    fax: bool = False  # T.38 seen in an offer or answer
    session_interval: float | None = None  # RFC 4028 Session-Expires agreed in the last 2xx

    def side_of(self, from_tag: str | None) -> Leg | None:
        """The leg that sent an in-dialog request, by its From tag."""
        if from_tag == self.caller_tag:
            return self.caller
        if from_tag == self.callee_tag:
            return self.callee
        return None


def is_t38(body: bytes) -> bool:
    """An SDP offer or answer that carries fax (``m=image … t38``)."""
    if b"m=image" not in body:
        return False
    lowered = body.lower()
    return any(b"t38" in line for line in lowered.split(b"\n") if line.startswith(b"m=image"))


def session_interval(value: str | None) -> float | None:
    """Seconds from a Session-Expires value (``1800;refresher=uac``), or None."""
    if not value:
        return None
    head = value.split(";", 1)[0].strip()
    return float(head) if head.isdigit() and int(head) > 0 else None


def build_bye(info: DialogInfo, toward_callee: bool, via: str, reason: str) -> Request:
    """A BYE the proxy sends in the dialog, as if from the other end (RFC 3261 §15.1.1, §12.2.1.1)."""
    if toward_callee:
        leg, sender = info.callee, info.caller
        from_value, to_value = info.caller_from, info.callee_to
    else:
        leg, sender = info.caller, info.callee
        from_value, to_value = info.callee_to, info.caller_from
    sender.cseq += 1
    headers = [
        ["via", "Via", via],
        ["max-forwards", "Max-Forwards", "70"],
        ["from", "From", from_value],
        ["to", "To", to_value],
        ["call-id", "Call-ID", info.call_id],
        ["cseq", "CSeq", f"{sender.cseq} BYE"],
        ["reason", "Reason", reason],
    ]
    return Request("BYE", leg.target, headers)

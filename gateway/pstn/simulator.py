"""The simulated PSTN trunk peer, sans-IO: the generic UAS deciding from the rule book.

Why this shape: the gateway routes E.164 destinations that are not on the
platform here with Request-URI ``sip:+<e164>@<pstn host>:<port>``; what
happens next (answer, busy, ring out, unknown number, answer and hang up)
is the rule book's answer for that number, carried out by
`gateway.uas.UserAgentServer`. Every call is written to the `PstnLog`.

A Request-URI that is not a telephone number (``+`` and up to 15 digits, or
a ``tel:`` URI) gets 484 Address Incomplete and is logged too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from gateway.clock import Clock
from gateway.pstn.log import PstnCall, PstnLog
from gateway.pstn.rules import RuleBook
from gateway.sip.errors import SipError
from gateway.sip.message import Request
from gateway.sip.transaction import DEFAULT_TIMERS, Timers
from gateway.sip.uri import AbsoluteURI, SipURI
from gateway.uas.agent import UserAgentServer
from gateway.uas.call import UasCall
from gateway.uas.decision import Decision, Reject
from gateway.uas.sdp import media_address, offer_of

Address = tuple[str, int]
USER_AGENT = "voiplab-pstn/0.1"
_NUMBER = re.compile(r"\+?\d{1,15}")


def dialled_number(req: Request) -> str | None:
    """The number a call is for: the Request-URI user part (sip:) or the tel: number, else None."""
    try:
        uri = req.ruri
    except SipError:
        return None
    if isinstance(uri, SipURI):
        number = (uri.user_unescaped or "").replace("-", "").replace(".", "")
    elif isinstance(uri, AbsoluteURI) and uri.scheme == "tel":
        number = uri.raw.partition(":")[2].split(";")[0].replace("-", "").replace(".", "")
    else:
        return None
    return number if _NUMBER.fullmatch(number) else None


class PstnSimulator:
    """Rules in (`rules`), calls out (`log`, `calls()`), datagrams through `on_datagram`."""

    def __init__(self, *, clock: Clock, send: Callable[[bytes, Address], None], host: str, port: int,
                 media_port: int, rules: RuleBook | None = None, log: PstnLog | None = None,
                 timers: Timers = DEFAULT_TIMERS, max_call: float = 4 * 3600.0) -> None:
        self.clock = clock
        self.rules = rules if rules is not None else RuleBook()
        self.log = log if log is not None else PstnLog()  # an empty log is falsy: no `or`
        self.agent = UserAgentServer(
            clock=clock, send=send, host=host, port=port, media_port=media_port, decide=self._decide,
            user="pstn", sdp_origin="voiplab-pstn", sdp_name="voiplab simulated PSTN", server=USER_AGENT,
            timers=timers, max_call=max_call, on_change=self._changed)

    def on_datagram(self, data: bytes, peer: Address) -> None:
        self.agent.on_datagram(data, peer)

    def close(self) -> None:
        self.agent.close()

    def calls(self) -> list[PstnCall]:
        """The records of the live calls (ringing or up)."""
        return [c.context for c in self.agent.calls() if isinstance(c.context, PstnCall)]

    def hang_up(self, call_id: str, reason: str | None = None) -> bool:
        """End a live call from the PSTN side (BYE, or 480 while ringing); False when not live."""
        call = self.agent.find(call_id)
        return call is not None and self.agent.hang_up(call, reason=reason)

    # -- the agent's callbacks ---------------------------------------------------------------
    def _decide(self, req: Request, peer: Address) -> Decision:
        number = dialled_number(req)
        try:
            caller = str(req.from_.uri)
        except SipError:
            caller = req.get("from") or ""
        if number is None:
            rule_pattern, rule_source = None, None
            decision: Decision = Reject(484, "Address Incomplete")
            number = req.uri
        else:
            rule, decision = self.rules.match(number)
            rule_pattern, rule_source = (rule.pattern, rule.source) if rule is not None else (None, None)
        record = PstnCall(
            id=self.log.next_id(), call_id=req.call_id, number=number, caller=caller,
            source=f"{peer[0]}:{peer[1]}", rule=rule_pattern, rule_source=rule_source,
            behaviour=decision.describe(), received_at=self.clock.wall(), media=media_address(offer_of(req)))
        self.log.add(record)
        return dataclasses.replace(decision, context=record)

    def _changed(self, call: UasCall) -> None:
        record = call.context
        if not isinstance(record, PstnCall):
            return
        record.state, record.status, record.reason = call.state, call.status, call.reason
        record.answered_at, record.ended_at = call.answered_at, call.ended_at
        record.ended_by, record.bye_status = call.ended_by, call.bye_status
        if record.media is None and call.offer is not None:
            record.media = media_address(call.offer)  # offerless INVITE: the ACK's SDP
        self.log.changed(record)

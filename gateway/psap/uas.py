"""The PSAP simulator's user agent server: the generic built-in UAS with the PSAP's judgement.

Why a thin layer: everything RFC 3261 asks of a UAS (transactions, 2xx
retransmission until the ACK, CANCEL → 487, BYE, re-INVITE, OPTIONS,
405/481) lives in `gateway.uas.UserAgentServer`; what is the PSAP's own is
the decision per INVITE and the verdict record:

- INVITE: `checks.inspect_invite` judges it; 404/424 (with Geolocation-Error)
  refuse it, otherwise 200 with an SDP answer (and for 933 the read-back
  text), optionally after `answer_delay` seconds of 180 Ringing.
- Every state change of the call is written to its `PsapCall` in the
  `PsapLog` (received → ringing → answered → confirmed → ended, or
  rejected / cancelled / no_ack).

Kept as it was before the generic base existed: no BYE of ours when the ACK
never comes (the record says `no_ack`), none on close, `Server` from
`PsapConfig.user_agent`, `Accept` naming PIDF-LO and multipart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from e911.conveyance import SDP, TEXT, build_multipart
from e911.pidf import PidfValidator
from gateway.clock import Clock
from gateway.psap.checks import Inspection, PsapConfig, Role, inspect_invite
from gateway.psap.log import ExpectedLookup, PsapCall, PsapLog
from gateway.psap.sdp import ORIGIN, SESSION_NAME
from gateway.sip.message import Request
from gateway.sip.transaction import DEFAULT_TIMERS, Timers, TransactionTable
from gateway.uas.agent import ALLOW, Session, UserAgentServer
from gateway.uas.call import (
    ANSWERED,
    CANCELLED,
    CONFIRMED,
    ENDED,
    NO_ACK,
    REJECTED,
    RINGING,
    UasCall,
)
from gateway.uas.decision import Answer, Decision, Reject

log = logging.getLogger("voiplab.psap")

Address = tuple[str, int]
__all__ = ["ALLOW", "Address", "PsapUas"]


class PsapUas:
    def __init__(self, *, clock: Clock, send: Callable[[bytes, Address], None], host: str, port: int,
                 media_port: int, config: PsapConfig, lookup: ExpectedLookup, log: PsapLog,
                 validator: PidfValidator, timers: Timers = DEFAULT_TIMERS,
                 max_call: float = 4 * 3600.0) -> None:
        self.clock = clock
        self.host = host
        self.port = port
        self.media_port = media_port
        self.config = config
        self.lookup = lookup
        self.log = log
        self.validator = validator
        self.timers = timers
        self.max_call = max_call
        self.agent = UserAgentServer(
            clock=clock, send=send, host=host, port=port, media_port=media_port, decide=self._decide,
            user="psap", sdp_origin=ORIGIN, sdp_name=SESSION_NAME,
            server=config.user_agent, accept="application/sdp, application/pidf+xml, multipart/mixed",
            timers=timers, max_call=max_call, bye_on_no_ack=False, hang_up_on_close=False,
            on_change=self._changed)

    # -- the agent's surface, as before ---------------------------------------------------------
    def on_datagram(self, data: bytes, peer: Address) -> None:
        self.agent.on_datagram(data, peer)

    def close(self) -> None:
        self.agent.close()

    @property
    def send(self) -> Callable[[bytes, Address], None]:
        return self.agent.send

    @property
    def contact(self) -> str:
        return self.agent.contact

    @property
    def dialogs(self) -> dict[tuple[str, str], Session]:
        return self.agent.dialogs

    @property
    def txns(self) -> TransactionTable:
        return self.agent.txns

    # -- the PSAP's own part ---------------------------------------------------------------------
    def _decide(self, req: Request, peer: Address) -> Decision:
        insp = inspect_invite(req, self.config, self.lookup, self.validator, self.clock.wall())
        record = self._record(req, peer, insp)
        if insp.status >= 300:
            headers = (("Geolocation-Error", insp.geolocation_error),) if insp.geolocation_error else ()
            record.state = "rejected"
            self.log.add(record)
            return Reject(insp.status, insp.reason, headers=headers, context=record)
        self.log.add(record)
        if insp.role is Role.TEST and insp.readback is not None:
            sdp = self.agent.sdp_answer(insp.sdp_offer)
            text = insp.readback.encode()
            if self.config.readback_multipart:
                content_type, body = build_multipart([([("Content-Type", SDP)], sdp),
                                                      ([("Content-Type", f"{TEXT};charset=utf-8")], text)])
            else:
                content_type, body = f"{TEXT};charset=utf-8", text
            return Answer(ring=self.config.answer_delay, sdp=sdp, body=body, content_type=content_type,
                          context=record)
        return Answer(ring=self.config.answer_delay, context=record)

    def _changed(self, call: UasCall) -> None:
        record = call.context
        if not isinstance(record, PsapCall):
            return
        state = call.state
        if state == RINGING:
            record.state = "ringing"
        elif state == ANSWERED:
            record.state = "answered"
            record.answered_at = call.answered_at
        elif state == CONFIRMED:
            record.state = "confirmed"
        elif state == CANCELLED:
            record.state, record.status, record.reason = "cancelled", 487, "Request Terminated"
            record.ended_at, record.ended_by = call.ended_at, "cancel"
        elif state in (ENDED, NO_ACK):
            if record.state in ("ended", "no_ack"):
                return  # the answer to a BYE of ours: nothing new for the verdict
            record.state = "no_ack" if state == NO_ACK else "ended"
            record.ended_at, record.ended_by = call.ended_at, call.ended_by
        elif state == REJECTED:
            if record.state == "rejected":
                return  # recorded by the judgement already
            record.state, record.status, record.reason = "rejected", call.status or 0, call.reason or ""
            record.ended_at, record.ended_by = call.ended_at, call.ended_by
        self.log.changed(record)

    def _record(self, req: Request, peer: Address, insp: Inspection) -> PsapCall:
        location = insp.location
        return PsapCall(
            id=self.log.next_id(), call_id=req.call_id,
            role=insp.role.value if insp.role is not None else "not_emergency",
            received_at=self.clock.wall(), request_uri=req.uri, to=req.get("to") or "",
            from_=req.get("from") or "", source=f"{peer[0]}:{peer[1]}", service_urn=insp.service_urn,
            callback=insp.callback, device_id=insp.device_id, checks=list(insp.checks),
            status=insp.status, reason=insp.reason, geolocation_error=insp.geolocation_error,
            pidf=insp.pidf.decode("utf-8", "replace") if insp.pidf is not None else None,
            conveyed=location.civic.elements() if location is not None else None,
            expected=insp.expected.elements() if insp.expected is not None else None,
            differences=[{"field": n, "conveyed": a, "registered": b} for n, a, b in insp.differences],
            readback=insp.readback, notes=list(insp.notes),
        )

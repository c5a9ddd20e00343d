"""The PSAP simulator's user agent server: transactions, dialogs and answers, no sockets.

Why separate from the socket glue: like the gateway core, this is fed
datagrams and a clock and hands bytes to a `send` callable, so tests can
drive it with a `ManualClock` and the asyncio server stays a few lines.

What it does per request (RFC 3261 UAS core, §8.2 and §13–15):

- INVITE: 100 Trying, then the judgement (`checks.inspect_invite`), then
  404/424 (through the INVITE server transaction, which retransmits it and
  absorbs the ACK), or 200 OK with an SDP answer (and for 933 the read-back
  text), optionally after `answer_delay` seconds of 180 Ringing. The 2xx is
  retransmitted by the UAS core (T1 doubling to T2) until its ACK arrives;
  no ACK within 64*T1 ends the call as "no_ack".
- ACK for the 2xx: confirms the dialog. CANCEL before the answer: 200 to
  the CANCEL, 487 to the INVITE. BYE: 200, the call ends. re-INVITE: 200
  with the same answer. OPTIONS: 200. Other requests: 405 / 481.

Responses go back to the datagram's source address (symmetric signalling,
as a phone behind NAT or the gateway's single UDP socket expects).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from e911.conveyance import SDP, TEXT, build_multipart
from e911.pidf import PidfValidator
from gateway.clock import Clock, TimerHandle
from gateway.psap.checks import Inspection, PsapConfig, Role, inspect_invite
from gateway.psap.log import ExpectedLookup, PsapCall, PsapLog
from gateway.psap.sdp import answer_sdp
from gateway.sip.errors import ParseError, SipError
from gateway.sip.message import Request, Response
from gateway.sip.parser import build_response, parse_message
from gateway.sip.transaction import (
    DEFAULT_TIMERS,
    AnyServer,
    InviteServerTransaction,
    Send,
    Timers,
    TransactionTable,
)

log = logging.getLogger("voiplab.psap")

Address = tuple[str, int]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"


@dataclass(slots=True)
class _Dialog:
    """A call the simulator answered 200: what it needs until the BYE (or until no ACK came)."""

    call_id: str
    local_tag: str
    record: PsapCall
    peer: Address
    answer: bytes  # the SDP answer, reused for re-INVITEs
    pending: bytes | None = None  # a 2xx waiting for its ACK
    pending_cseq: int = 0
    interval: float = 0.0
    give_up_at: float = 0.0
    retx: TimerHandle | None = None
    expiry: TimerHandle | None = None


@dataclass(slots=True)
class _TxnCtx:
    """What the simulator keeps beside a server transaction (`txn.context`)."""

    peer: Address
    pending: _Pending | None = None


@dataclass(slots=True)
class _Pending:
    """An INVITE being rung (answer_delay): answered by a timer unless CANCELled first."""

    txn: InviteServerTransaction
    request: Request
    inspection: Inspection
    record: PsapCall
    to_tag: str
    peer: Address
    timer: TimerHandle | None = None


class PsapUas:
    def __init__(self, *, clock: Clock, send: Callable[[bytes, Address], None], host: str, port: int,
                 media_port: int, config: PsapConfig, lookup: ExpectedLookup, log: PsapLog,
                 validator: PidfValidator, timers: Timers = DEFAULT_TIMERS,
                 max_call: float = 4 * 3600.0) -> None:
        self.clock = clock
        self.send = send
        self.host = host
        self.port = port
        self.media_port = media_port
        self.config = config
        self.lookup = lookup
        self.log = log
        self.validator = validator
        self.timers = timers
        self.max_call = max_call
        self.txns = TransactionTable(timers)
        self.dialogs: dict[tuple[str, str], _Dialog] = {}
        self._timer: TimerHandle | None = None
        self._timer_at = float("inf")
        self._sdp_session = secrets.randbelow(1 << 30)

    # -- entry point -------------------------------------------------------------------------
    def on_datagram(self, data: bytes, peer: Address) -> None:
        try:
            msg = parse_message(data)
        except SipError as exc:
            partial = exc.partial
            if isinstance(partial, Request) and partial.method != "ACK":
                self._stateless(partial, peer, exc.status, exc.reason)
            return
        if isinstance(msg, Response):
            return  # the simulator sends no requests
        try:
            self._on_request(msg, peer)
        except ParseError as exc:
            if msg.method != "ACK":
                self._stateless(msg, peer, exc.status, exc.reason)
        except Exception:  # one bad request must not take the simulator down
            log.exception("PSAP simulator: error handling %s from %s", msg.method, peer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for dialog in list(self.dialogs.values()):
            for handle in (dialog.retx, dialog.expiry):
                if handle is not None:
                    handle.cancel()
        self.dialogs.clear()

    @property
    def contact(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"<sip:psap@{host}:{self.port}>"

    # -- requests ----------------------------------------------------------------------------
    def _on_request(self, req: Request, peer: Address) -> None:
        now = self.clock.now()
        txn = self.txns.find_server(req)
        if txn is not None:
            self._run(txn, txn.on_request(req, now))
            return
        method = req.method
        if method == "ACK":
            self._on_ack(req)
            return
        if method == "CANCEL":
            self._on_cancel(req, peer, now)
            return
        txn = self.txns.new_server(req, False, now)
        txn.context = _TxnCtx(peer)
        if req.to_tag is not None:
            self._in_dialog(txn, req)
        elif method == "INVITE":
            assert isinstance(txn, InviteServerTransaction)
            self._on_invite(txn, req, peer)
        elif method == "OPTIONS":
            self._respond(txn, req, 200, "OK", headers=[
                ("Allow", ALLOW), ("Accept", "application/sdp, application/pidf+xml, multipart/mixed")])
        elif method == "BYE":
            self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
        else:
            self._respond(txn, req, 405, "Method Not Allowed", headers=[("Allow", ALLOW)])

    def _on_invite(self, txn: InviteServerTransaction, req: Request, peer: Address) -> None:
        self._respond(txn, req, 100, "Trying", tag=None)
        insp = inspect_invite(req, self.config, self.lookup, self.validator, self.clock.wall())
        record = self._record(req, peer, insp)
        to_tag = "psap" + secrets.token_hex(6)
        if insp.status >= 300:
            headers = [("Geolocation-Error", insp.geolocation_error)] if insp.geolocation_error else []
            record.state = "rejected"
            self.log.add(record)
            self._respond(txn, req, insp.status, insp.reason, tag=to_tag, headers=headers)
            return
        self.log.add(record)
        pending = _Pending(txn, req, insp, record, to_tag, peer)
        if self.config.answer_delay > 0:
            self._respond(txn, req, 180, "Ringing", tag=to_tag, headers=[("Contact", self.contact)])
            record.state = "ringing"
            self.log.changed(record)
            txn.context = _TxnCtx(peer, pending)
            pending.timer = self.clock.call_later(self.config.answer_delay, lambda: self._answer(pending))
        else:
            self._answer(pending)

    def _answer(self, pending: _Pending) -> None:
        txn, req, insp, record = pending.txn, pending.request, pending.inspection, pending.record
        pending.timer = None
        if isinstance(txn.context, _TxnCtx):
            txn.context.pending = None
        if txn.last_status >= 200 or txn.terminated:
            return  # CANCELled meanwhile
        sdp = answer_sdp(insp.sdp_offer, self.host, self.media_port, self._sdp_session)
        content_type, body = SDP, sdp
        if insp.role is Role.TEST and insp.readback is not None:
            text = insp.readback.encode()
            if self.config.readback_multipart:
                content_type, body = build_multipart([([("Content-Type", SDP)], sdp),
                                                      ([("Content-Type", f"{TEXT};charset=utf-8")], text)])
            else:
                content_type, body = f"{TEXT};charset=utf-8", text
        headers = [(("Record-Route", rr)) for rr in req.get_all("record-route")]
        headers += [("Contact", self.contact), ("Allow", ALLOW), ("Content-Type", content_type),
                    ("Server", self.config.user_agent)]
        resp = build_response(req, 200, "OK", to_tag=pending.to_tag, headers=headers, body=body)
        now = self.clock.now()
        self._run(txn, txn.respond(resp, now))
        record.state = "answered"
        record.answered_at = self.clock.wall()
        self.log.changed(record)
        data = resp.to_bytes()
        dialog = _Dialog(req.call_id, pending.to_tag, record, pending.peer, sdp, pending=data,
                         pending_cseq=req.cseq.seq, interval=self.timers.t1,
                         give_up_at=now + 64 * self.timers.t1)
        self.dialogs[(req.call_id, pending.to_tag)] = dialog
        dialog.retx = self.clock.call_later(self.timers.t1, lambda: self._retransmit(dialog))
        dialog.expiry = self.clock.call_later(self.max_call, lambda: self._end(dialog, "timeout"))

    def _retransmit(self, dialog: _Dialog) -> None:
        """RFC 3261 §13.3.1.4: resend the 2xx until the ACK; give up after 64*T1."""
        dialog.retx = None
        if dialog.pending is None or self.dialogs.get((dialog.call_id, dialog.local_tag)) is not dialog:
            return
        if self.clock.now() >= dialog.give_up_at:
            dialog.pending = None
            self._end(dialog, "no_ack")
            return
        self.send(dialog.pending, dialog.peer)
        dialog.interval = min(dialog.interval * 2, self.timers.t2)
        delay = min(dialog.interval, dialog.give_up_at - self.clock.now())
        dialog.retx = self.clock.call_later(delay, lambda: self._retransmit(dialog))

    def _on_ack(self, req: Request) -> None:
        tag = req.to_tag
        dialog = self.dialogs.get((req.call_id, tag)) if tag else None
        if dialog is None or dialog.pending is None or req.cseq.seq != dialog.pending_cseq:
            return  # a stray ACK or an ACK retransmission
        dialog.pending = None
        if dialog.retx is not None:
            dialog.retx.cancel()
            dialog.retx = None
        if dialog.record.state == "answered":
            dialog.record.state = "confirmed"
            self.log.changed(dialog.record)

    def _on_cancel(self, req: Request, peer: Address, now: float) -> None:
        invite = self.txns.find_cancelled(req)
        txn = self.txns.new_server(req, False, now)
        txn.context = _TxnCtx(peer)
        if invite is None:
            self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
            return
        self._respond(txn, req, 200, "OK")
        ctx = invite.context
        if not isinstance(ctx, _TxnCtx) or ctx.pending is None or invite.last_status >= 200:
            return  # already answered: the CANCEL changes nothing (RFC 3261 §9.2)
        pending, ctx.pending = ctx.pending, None
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        resp = build_response(pending.request, 487, "Request Terminated", to_tag=pending.to_tag)
        self._run(invite, invite.respond(resp, now))
        record = pending.record
        record.state, record.status, record.reason = "cancelled", 487, "Request Terminated"
        record.ended_at, record.ended_by = self.clock.wall(), "cancel"
        self.log.changed(record)

    def _in_dialog(self, txn: AnyServer, req: Request) -> None:
        dialog = self.dialogs.get((req.call_id, req.to_tag or ""))
        if dialog is None:
            self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
            return
        method = req.method
        if method == "BYE":
            self._respond(txn, req, 200, "OK")
            self._end(dialog, "bye")
        elif method == "INVITE":  # re-INVITE (session refresh, hold): same answer
            resp = build_response(req, 200, "OK", headers=[
                ("Contact", self.contact), ("Content-Type", SDP)], body=dialog.answer)
            self._run(txn, txn.respond(resp, self.clock.now()))
            dialog.pending, dialog.pending_cseq = resp.to_bytes(), req.cseq.seq
            dialog.interval, dialog.give_up_at = self.timers.t1, self.clock.now() + 64 * self.timers.t1
            if dialog.retx is None:
                dialog.retx = self.clock.call_later(self.timers.t1, lambda: self._retransmit(dialog))
        elif method in ("OPTIONS", "INFO", "UPDATE", "NOTIFY"):
            self._respond(txn, req, 200, "OK")
        else:
            self._respond(txn, req, 405, "Method Not Allowed", headers=[("Allow", ALLOW)])

    def _end(self, dialog: _Dialog, why: str) -> None:
        key = (dialog.call_id, dialog.local_tag)
        if self.dialogs.get(key) is not dialog:
            return
        del self.dialogs[key]
        for handle in (dialog.retx, dialog.expiry):
            if handle is not None:
                handle.cancel()
        dialog.retx = dialog.expiry = None
        record = dialog.record
        record.state = "no_ack" if why == "no_ack" else "ended"
        record.ended_at, record.ended_by = self.clock.wall(), why
        self.log.changed(record)

    # -- records -----------------------------------------------------------------------------
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

    # -- sending -------------------------------------------------------------------------------
    def _respond(self, txn: AnyServer, req: Request, status: int, reason: str, *,
                 tag: str | None = "", headers: list[tuple[str, str]] | None = None) -> None:
        """Answer through the transaction; `tag=""` means "make one" (None: no To tag, for 100)."""
        to_tag = tag if tag != "" else (None if req.to_tag else "psap" + secrets.token_hex(6))
        resp = build_response(req, status, reason, to_tag=to_tag, headers=headers or [])
        self._run(txn, txn.respond(resp, self.clock.now()))

    def _stateless(self, req: Request, peer: Address, status: int, reason: str) -> None:
        try:
            resp = build_response(req, status, reason)
        except ParseError:
            return
        self.send(resp.to_bytes(), peer)

    def _run(self, txn: AnyServer, actions: list[Any]) -> None:
        ctx = txn.context
        for action in actions:
            if type(action) is Send and isinstance(ctx, _TxnCtx):
                self.send(action.data, ctx.peer)
        self.txns.update(txn)
        if txn.terminated:
            txn.context = None
        self._arm()

    def _arm(self) -> None:
        deadline = self.txns.next_deadline()
        if deadline is None or deadline >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.clock.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        for txn, actions in self.txns.expire(self.clock.now()):
            ctx = txn.context
            for action in actions:
                if type(action) is Send and isinstance(ctx, _TxnCtx):
                    self.send(action.data, ctx.peer)
            if txn.terminated:
                txn.context = None
        self._arm()

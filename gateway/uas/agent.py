"""A built-in SIP user agent server: transactions, dialogs, answers and our own BYE, no sockets.

Why one generic agent: the PSTN simulator, the PSAP simulator and the
conference bridge are all "a SIP node the gateway routes calls to" and differ
only in what they do with an INVITE. That choice is a `decide(invite, source)
-> Decision` callback (`gateway.uas.decision`); everything RFC 3261 asks of
a UAS is done once, here, and tested once. Like the gateway core, the agent
is fed datagrams and a clock and hands bytes to a `send(data, address)`
callable, so tests drive it on a `ManualClock`; the asyncio glue
(`gateway.uas.server`) is a few lines.

Per request (RFC 3261 UAS core, §8.2, §12–15, §17.2):

- INVITE: 100 Trying, then the decision: 200 with SDP, 180 and a timer, or a
  final >= 300 (through the INVITE server transaction, which retransmits it
  until the ACK). The 2xx is retransmitted by the agent (T1 doubling to T2,
  §13.3.1.4) until its ACK; without an ACK within 64*T1 the call ends as
  `no_ack` (and, per §13.3.1.4, with a BYE unless `bye_on_no_ack=False`).
  A long ring re-sends 180 every `ring_refresh` seconds (§13.3.1.1) so a
  proxy's Timer C does not give up on it.
- `Require` with an extension we do not support: 420 + Unsupported.
  Session timers (RFC 4028): a Session-Expires below 90 s gets 422 + Min-SE;
  when the caller supports `timer` the 2xx names it the refresher
  (`refresher=uac`, `Require: timer`) and the agent answers its refreshes.
- ACK for the 2xx: confirms the call. CANCEL before the final: 200 to the
  CANCEL, 487 to the INVITE; after it: 200 and nothing else (§9.2).
- In the dialog (matched on Call-ID, our tag and the caller's tag, else 481;
  a CSeq lower than the last one, 500): BYE → 200, the call ends; re-INVITE
  → 200 with the same answer (a new SDP version only when the answer had to
  change, e.g. hold); UPDATE → 200 (with SDP when it carried an offer);
  OPTIONS, INFO, NOTIFY → 200; anything else 405.
- Out of any dialog: OPTIONS → 200 with Allow/Accept/Supported; BYE, UPDATE,
  INFO → 481; other methods 405.

Our own BYE (`hang_up`, `Answer(hang_up_after=…)`, the `max_call` safety
net) is sent in a non-INVITE client transaction with the dialog's From/To/
Call-ID, the next local CSeq and the route set of the INVITE (the gateway
record-routes, so the BYE goes to the gateway first: §12.2.1.1, see
`gateway.uas.dialog`). A BYE is never sent before the ACK for our 2xx
(§15: the hang-up waits for it).

Responses go back to the datagram's source address (symmetric signalling, as
the gateway's single UDP socket expects).
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.clock import Clock, TimerHandle
from gateway.sip.errors import ParseError, SipError
from gateway.sip.message import Request, Response
from gateway.sip.parser import build_response, parse_message
from gateway.sip.transaction import (
    DEFAULT_TIMERS,
    AnyClient,
    AnyServer,
    Deliver,
    DeliverRequest,
    InviteServerTransaction,
    Send,
    Timeout,
    Timers,
    TransactionTable,
)
from gateway.uas.call import (
    ANSWERED,
    CANCELLED,
    CONFIRMED,
    ENDED,
    NO_ACK,
    REJECTED,
    RINGING,
    Address,
    UasCall,
)
from gateway.uas.decision import Answer, Decision, Reject, Ring
from gateway.uas.dialog import (
    Dialog,
    build_request,
    dialog_from_invite,
    hop_address,
    new_branch,
    refresh_target,
)
from gateway.uas.sdp import answer_sdp, offer_of

log = logging.getLogger("voiplab.uas")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
SUPPORTED = ("timer",)
#: RFC 4028 §4: the smallest session interval anyone may ask for
MIN_SE = 90

Decide = Callable[[Request, Address], Decision]
Send_ = Callable[[bytes, Address], None]
Headers = list[tuple[str, str]]


@dataclass(slots=True, eq=False)
class _Pending:
    """An INVITE without a final answer yet (ringing, or being answered this very call)."""

    txn: InviteServerTransaction
    request: Request
    call: UasCall
    dialog: Dialog
    peer: Address
    timer: TimerHandle | None = None  # the end of the ring
    refresh: TimerHandle | None = None  # the next 180 re-sent

    def cancel_timers(self) -> None:
        for handle in (self.timer, self.refresh):
            if handle is not None:
                handle.cancel()
        self.timer = self.refresh = None


@dataclass(slots=True, eq=False)
class Session:
    """A call answered 200: what the agent needs until the BYE (ours or theirs)."""

    call: UasCall
    dialog: Dialog
    peer: Address
    sdp: bytes  # our current SDP, reused for re-INVITEs
    sdp_version: int
    custom_sdp: bool  # the decision gave the SDP: reuse it verbatim
    pending: bytes | None = None  # a 2xx waiting for its ACK
    pending_cseq: int = 0
    interval: float = 0.0
    give_up_at: float = 0.0
    retx: TimerHandle | None = None
    expiry: TimerHandle | None = None
    hangup: TimerHandle | None = None
    hangup_wanted: str | None = None  # why we want to hang up, once the ACK is in
    hangup_reason: str | None = None  # a Reason header value for that BYE

    def cancel_timers(self) -> None:
        for handle in (self.retx, self.expiry, self.hangup):
            if handle is not None:
                handle.cancel()
        self.retx = self.expiry = self.hangup = None


@dataclass(slots=True)
class _TxnCtx:
    """What the agent keeps beside a transaction (`txn.context`): where its messages go."""

    peer: Address
    pending: _Pending | None = None
    call: UasCall | None = None  # client transaction: the call our BYE ends


class UserAgentServer:
    """The sans-IO UAS. `decide` chooses per INVITE; `on_change(call)` hears every state change.

    `host`/`port` are the address the agent advertises (Contact, Via of its
    BYE); `media_port` the RTP port its SDP answers point at. `max_call` is a
    safety net for calls nobody hangs up (a BYE of ours after that long).
    `on_change` may be called once more for an ended call when the answer
    to our BYE arrives (`bye_status`); listeners should be idempotent.
    """

    def __init__(self, *, clock: Clock, send: Send_, host: str, port: int, media_port: int,
                 decide: Decide, user: str = "uas", tag_prefix: str | None = None,
                 sdp_origin: str = "voiplab", sdp_name: str = "voiplab", server: str | None = None,
                 accept: str = "application/sdp", timers: Timers = DEFAULT_TIMERS,
                 max_call: float = 4 * 3600.0, ring_refresh: float = 60.0, bye_on_no_ack: bool = True,
                 hang_up_on_close: bool = True, on_change: Callable[[UasCall], None] | None = None) -> None:
        if max_call <= 0 or ring_refresh <= 0:
            raise ValueError("max_call and ring_refresh must be positive")
        self.clock = clock
        self.send = send
        self.host = host
        self.port = port
        self.media_port = media_port
        self.decide = decide
        self.user = user
        self.tag_prefix = tag_prefix if tag_prefix is not None else user
        self.sdp_origin = sdp_origin
        self.sdp_name = sdp_name
        self.server = server
        self.accept = accept
        self.timers = timers
        self.max_call = max_call
        self.ring_refresh = ring_refresh
        self.bye_on_no_ack = bye_on_no_ack
        self.hang_up_on_close = hang_up_on_close
        self.on_change = on_change
        self.txns = TransactionTable(timers)
        self.dialogs: dict[tuple[str, str], Session] = {}
        self._live: dict[int, _Pending | Session] = {}
        self._ids = itertools.count(1)
        self._timer: TimerHandle | None = None
        self._timer_at = float("inf")
        self._closed = False
        self._sdp_session = secrets.randbelow(1 << 30)

    # -- public ------------------------------------------------------------------------------
    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@{self._hostport}>"

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self._hostport}"

    def calls(self) -> list[UasCall]:
        """The live calls (ringing, answered, confirmed), oldest first."""
        return [entry.call for entry in self._live.values()]

    def find(self, call_id: str) -> UasCall | None:
        """A live call by its SIP Call-ID."""
        return next((e.call for e in self._live.values() if e.call.call_id == call_id), None)

    def get(self, call_ref: int) -> UasCall | None:
        """A live call by its record id."""
        entry = self._live.get(call_ref)
        return entry.call if entry is not None else None

    def sdp_answer(self, offer: bytes | None, version: int | None = None) -> bytes:
        """Our SDP answer to `offer` (what a decision may embed in a custom body)."""
        return answer_sdp(offer, self.host, self.media_port, self._sdp_session, version=version,
                          origin=self.sdp_origin, session_name=self.sdp_name)

    def hang_up(self, call: UasCall | int, *, reason: str | None = None, status: int = 480,
                status_reason: str = "Temporarily Unavailable") -> bool:
        """End a live call from our side: BYE when answered (after its ACK), `status` while ringing.

        `reason` becomes a Reason header on the BYE (e.g. ``SIP;cause=200;text="…"``).
        False when the call is not live.
        """
        entry = self._live.get(call if isinstance(call, int) else call.id)
        if entry is None:
            return False
        if reason is not None and ("\r" in reason or "\n" in reason):
            raise ValueError("a Reason header is one line")
        if isinstance(entry, _Pending):
            self._final(entry, status, status_reason, [], ended_by="hangup")
        else:
            self._hang_up_session(entry, "hangup", reason)
        return True

    def on_datagram(self, data: bytes, peer: Address) -> None:
        """One UDP datagram from `peer`. Never raises: a bad message gets a 400 or is dropped."""
        if self._closed:
            return
        try:
            msg = parse_message(data)
        except SipError as exc:
            partial = exc.partial
            if isinstance(partial, Request) and partial.method != "ACK":
                self._stateless(partial, peer, exc.status, exc.reason)
            return
        try:
            if isinstance(msg, Response):
                self._on_response(msg)
            else:
                self._on_request(msg, peer)
        except ParseError as exc:
            if isinstance(msg, Request) and msg.method != "ACK":
                self._stateless(msg, peer, exc.status, exc.reason)
        except Exception:  # one bad message must not take the peer down
            log.exception("UAS %s: error handling a message from %s", self.user, peer)

    def close(self) -> None:
        """Stop: cancel every timer; with `hang_up_on_close`, send a BYE for every confirmed call."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for entry in list(self._live.values()):
            entry.cancel_timers()
            if isinstance(entry, Session):
                if self.hang_up_on_close and entry.pending is None:
                    self._bye(entry, "closed", None)
                else:
                    self._end(entry, ENDED, "closed")
            elif self.hang_up_on_close:
                self._final(entry, 503, "Service Unavailable", [], state=ENDED, ended_by="closed")
            else:
                self._finish(entry.call, ENDED, ended_by="closed")
        self._live.clear()
        self.dialogs.clear()

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
                ("Allow", ALLOW), ("Accept", self.accept), ("Supported", ", ".join(SUPPORTED))])
        elif method in ("BYE", "UPDATE", "INFO", "PRACK"):
            self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
        else:
            self._respond(txn, req, 405, "Method Not Allowed", headers=[("Allow", ALLOW)])

    def _on_invite(self, txn: InviteServerTransaction, req: Request, peer: Address) -> None:
        self._respond(txn, req, 100, "Trying", tag=None)
        refusal = self._refusal(req)
        if refusal is not None:
            self._respond(txn, req, *refusal)
            return
        to_tag = self._tag()
        host, port = peer
        fallback = f"sip:[{host}]:{port}" if ":" in host else f"sip:{host}:{port}"
        try:
            dialog = dialog_from_invite(req, to_tag, fallback)
        except ParseError as exc:
            self._respond(txn, req, exc.status, exc.reason)
            return
        try:
            decision = self.decide(req, peer)
            if not isinstance(decision, Answer | Reject | Ring):
                raise TypeError(f"decide returned {decision!r}, not a Decision")
        except Exception:
            log.exception("UAS %s: decide failed for %s", self.user, req.call_id)
            self._respond(txn, req, 500, "Server Internal Error")
            return
        call = UasCall(
            id=next(self._ids), call_id=req.call_id, local_tag=to_tag, remote_tag=req.from_tag,
            request_uri=req.uri, from_=req.get("from") or "", to=req.get("to") or "", source=peer,
            decision=decision, received_at=self.clock.wall(), offer=offer_of(req),
        )
        pending = _Pending(txn, req, call, dialog, peer)
        txn.context = _TxnCtx(peer, pending)
        self._live[call.id] = pending
        if isinstance(decision, Reject) and decision.ring == 0:
            self._final(pending, decision.status, decision.reason, list(decision.headers))
        elif isinstance(decision, Answer) and decision.ring == 0:
            self._answer(pending)
        else:
            self._ring(pending)
            if not isinstance(decision, Ring):
                pending.timer = self.clock.call_later(decision.ring, lambda: self._ring_over(pending))

    def _ring(self, pending: _Pending) -> None:
        self._respond(pending.txn, pending.request, 180, "Ringing", tag=pending.call.local_tag,
                      headers=self._dialog_headers(pending.request))
        pending.refresh = self.clock.call_later(self.ring_refresh, lambda: self._ring_again(pending))
        if pending.call.status is None:  # the first 180, not a refresh
            pending.call.state, pending.call.status = RINGING, 180
            self._notify(pending.call)

    def _ring_again(self, pending: _Pending) -> None:
        pending.refresh = None
        if self._live.get(pending.call.id) is not pending or pending.txn.last_status >= 200:
            return
        self._ring(pending)

    def _ring_over(self, pending: _Pending) -> None:
        pending.timer = None
        if self._live.get(pending.call.id) is not pending:
            return
        decision = pending.call.decision
        if isinstance(decision, Reject):
            self._final(pending, decision.status, decision.reason, list(decision.headers))
        else:
            self._answer(pending)

    def _answer(self, pending: _Pending) -> None:
        txn, req, call = pending.txn, pending.request, pending.call
        decision = call.decision
        assert isinstance(decision, Answer)
        pending.cancel_timers()
        if isinstance(txn.context, _TxnCtx):
            txn.context.pending = None
        if txn.last_status >= 200 or txn.terminated:
            return  # CANCELled meanwhile
        sdp = decision.sdp if decision.sdp is not None else self.sdp_answer(call.offer)
        if decision.body is not None and decision.content_type is not None:
            content_type, body = decision.content_type, decision.body
        else:
            content_type, body = "application/sdp", sdp
        headers = self._dialog_headers(req)
        headers += [("Allow", ALLOW), ("Supported", ", ".join(SUPPORTED)), *self._timer_headers(req),
                    ("Content-Type", content_type), *decision.headers]
        resp = self._response(req, 200, "OK", call.local_tag, headers, body)
        now = self.clock.now()
        self._run(txn, txn.respond(resp, now))
        session = Session(call, pending.dialog, pending.peer, sdp, self._sdp_session,
                           custom_sdp=decision.sdp is not None, pending=resp.to_bytes(),
                           pending_cseq=req.cseq.seq, interval=self.timers.t1,
                           give_up_at=now + 64 * self.timers.t1)
        self.dialogs[(call.call_id, call.local_tag)] = session
        self._live[call.id] = session
        session.retx = self.clock.call_later(self.timers.t1, lambda: self._retransmit(session))
        session.expiry = self.clock.call_later(self.max_call, lambda: self._hang_up_session(session, "timeout"))
        if decision.hang_up_after is not None:
            session.hangup = self.clock.call_later(
                decision.hang_up_after, lambda: self._hang_up_session(session, "hangup"))
        call.state, call.status, call.reason = ANSWERED, 200, "OK"
        call.answered_at = self.clock.wall()
        call.answer = sdp
        self._notify(call)

    def _final(self, pending: _Pending, status: int, reason: str, headers: Headers, *,
               state: str = REJECTED, ended_by: str | None = None) -> None:
        """A final >= 300 for a pending INVITE: the call is over."""
        pending.cancel_timers()
        txn = pending.txn
        if isinstance(txn.context, _TxnCtx):
            txn.context.pending = None
        if txn.last_status < 200 and not txn.terminated:
            self._respond(txn, pending.request, status, reason, tag=pending.call.local_tag, headers=headers)
        if self._live.get(pending.call.id) is pending:
            del self._live[pending.call.id]
        call = pending.call
        call.status, call.reason = status, reason
        self._finish(call, state, ended_by=ended_by)

    def _retransmit(self, session: Session) -> None:
        """RFC 3261 §13.3.1.4: resend the 2xx until the ACK; give up after 64*T1."""
        session.retx = None
        if session.pending is None or self.dialogs.get(self._key(session)) is not session:
            return
        if self.clock.now() >= session.give_up_at:
            session.pending = None
            if self.bye_on_no_ack:
                self._bye(session, "no_ack", None, state=NO_ACK)
            else:
                self._end(session, NO_ACK, "no_ack")
            return
        self.send(session.pending, session.peer)
        session.interval = min(session.interval * 2, self.timers.t2)
        delay = min(session.interval, session.give_up_at - self.clock.now())
        session.retx = self.clock.call_later(delay, lambda: self._retransmit(session))

    def _on_ack(self, req: Request) -> None:
        tag = req.to_tag
        session = self.dialogs.get((req.call_id, tag)) if tag else None
        if session is None or session.pending is None or req.cseq.seq != session.pending_cseq:
            return  # a stray ACK or an ACK retransmission
        session.pending = None
        if session.retx is not None:
            session.retx.cancel()
            session.retx = None
        offer = offer_of(req)
        if offer is not None and session.call.offer is None:
            session.call.offer = offer  # offerless INVITE: the answer is in the ACK
        if session.call.state == ANSWERED:
            session.call.state = CONFIRMED
            self._notify(session.call)
        if session.hangup_wanted is not None:
            self._bye(session, session.hangup_wanted, session.hangup_reason)

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
        self._final(ctx.pending, 487, "Request Terminated", [], state=CANCELLED, ended_by="cancel")

    def _in_dialog(self, txn: AnyServer, req: Request) -> None:
        session = self.dialogs.get((req.call_id, req.to_tag or ""))
        dialog = session.dialog if session is not None else None
        if session is None or dialog is None or (
                dialog.remote_tag is not None and req.from_tag != dialog.remote_tag):
            self._respond(txn, req, 481, "Call/Transaction Does Not Exist")
            return
        seq = req.cseq.seq
        if seq < dialog.remote_cseq:
            self._respond(txn, req, 500, "CSeq Out of Order")
            return
        dialog.remote_cseq = seq
        method = req.method
        if method == "BYE":
            self._respond(txn, req, 200, "OK")
            self._end(session, ENDED, "bye")
        elif method in ("INVITE", "UPDATE"):
            self._refresh(txn, req, session)
        elif method in ("OPTIONS", "INFO", "NOTIFY"):
            headers = [("Allow", ALLOW), ("Accept", self.accept)] if method == "OPTIONS" else []
            self._respond(txn, req, 200, "OK", headers=headers)
        else:
            self._respond(txn, req, 405, "Method Not Allowed", headers=[("Allow", ALLOW)])

    def _refresh(self, txn: AnyServer, req: Request, session: Session) -> None:
        """re-INVITE or UPDATE: session refresh, hold, a new target. Same answer unless it must change."""
        refusal = self._refusal(req)
        if refusal is not None:
            self._respond(txn, req, *refusal)
            return
        refresh_target(session.dialog, req)
        offer = offer_of(req)
        if offer is not None and not session.custom_sdp:
            candidate = self.sdp_answer(offer, session.sdp_version)
            if candidate != session.sdp:
                session.sdp_version += 1
                candidate = self.sdp_answer(offer, session.sdp_version)
            session.sdp = candidate
            session.call.offer = offer
            session.call.answer = candidate
        headers = [("Contact", self.contact), ("Allow", ALLOW), ("Supported", ", ".join(SUPPORTED)),
                   *self._timer_headers(req)]
        body = b""
        if req.method == "INVITE" or offer is not None:
            headers.append(("Content-Type", "application/sdp"))
            body = session.sdp
        resp = self._response(req, 200, "OK", None, headers, body)
        now = self.clock.now()
        self._run(txn, txn.respond(resp, now))
        if req.method == "INVITE":
            session.pending, session.pending_cseq = resp.to_bytes(), req.cseq.seq
            session.interval, session.give_up_at = self.timers.t1, now + 64 * self.timers.t1
            if session.retx is None:
                session.retx = self.clock.call_later(self.timers.t1, lambda: self._retransmit(session))

    # -- our BYE -------------------------------------------------------------------------------
    def _hang_up_session(self, session: Session, why: str, reason: str | None = None) -> None:
        if self.dialogs.get(self._key(session)) is not session:
            return
        if session.pending is not None:
            session.hangup_wanted, session.hangup_reason = why, reason  # §15: not before the ACK
            return
        self._bye(session, why, reason)

    def _bye(self, session: Session, why: str, reason: str | None, *, state: str = ENDED) -> None:
        headers: Headers = []
        if reason is not None:
            headers.append(("Reason", reason))
        if self.server:
            headers.append(("User-Agent", self.server))
        via = f"SIP/2.0/UDP {self._hostport};branch={new_branch()};rport"
        req, hop = build_request(session.dialog, "BYE", via, headers=headers)
        dest = hop_address(hop, session.peer)
        self._end(session, state, why)
        txn, actions = self.txns.new_client(req, False, self.clock.now())
        txn.context = _TxnCtx(dest, call=session.call)
        self._run(txn, actions)

    def _on_response(self, resp: Response) -> None:
        txn = self.txns.find_client(resp)
        if txn is not None:
            self._run(txn, txn.on_response(resp, self.clock.now()))

    # -- endings ---------------------------------------------------------------------------------
    def _end(self, session: Session, state: str, why: str) -> None:
        key = self._key(session)
        if self.dialogs.get(key) is not session:
            return
        del self.dialogs[key]
        session.cancel_timers()
        if self._live.get(session.call.id) is session:
            del self._live[session.call.id]
        self._finish(session.call, state, ended_by=why)

    def _finish(self, call: UasCall, state: str, *, ended_by: str | None) -> None:
        call.state = state
        call.ended_at = self.clock.wall()
        call.ended_by = ended_by
        self._notify(call)

    def _notify(self, call: UasCall) -> None:
        if self.on_change is not None:
            try:
                self.on_change(call)
            except Exception:  # a listener's bug must not break the call
                log.exception("UAS %s: on_change failed for %s", self.user, call.call_id)

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def _hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def _tag(self) -> str:
        return self.tag_prefix + secrets.token_hex(6)

    @staticmethod
    def _key(session: Session) -> tuple[str, str]:
        return session.call.call_id, session.call.local_tag

    def _dialog_headers(self, req: Request) -> Headers:
        """Record-Route copied as received and our Contact: what a dialog-creating response carries."""
        return [*(("Record-Route", rr) for rr in req.get_all("record-route")), ("Contact", self.contact)]

    @staticmethod
    def _refusal(req: Request) -> tuple[int, str, Headers] | None:
        """420 for an extension we lack (§8.2.2.3); 400/422 for a Session-Expires we cannot take."""
        unsupported = [t for t in req.values("require") if t.strip().lower() not in SUPPORTED]
        if unsupported:
            return 420, "Bad Extension", [("Unsupported", ", ".join(unsupported))]
        value = req.get("session-expires")
        if value is not None:
            interval = value.split(";")[0].strip()
            if not interval.isdigit():
                return 400, "Malformed Session-Expires header", []
            if int(interval) < MIN_SE:
                return 422, "Session Interval Too Small", [("Min-SE", str(MIN_SE))]
        return None

    @staticmethod
    def _timer_headers(req: Request) -> Headers:
        """RFC 4028 §9: the caller refreshes when it can; otherwise no session timer at all."""
        value = req.get("session-expires")
        if value is None:
            return []
        tags = {t.strip().lower() for t in (*req.values("supported"), *req.values("require"))}
        if "timer" not in tags:
            return []
        return [("Session-Expires", f"{value.split(';')[0].strip()};refresher=uac"), ("Require", "timer")]

    def _response(self, req: Request, status: int, reason: str, to_tag: str | None, headers: Headers,
                  body: bytes = b"") -> Response:
        if self.server and status != 100:
            headers = [*headers, ("Server", self.server)]
        return build_response(req, status, reason, to_tag=to_tag, headers=headers, body=body)

    def _respond(self, txn: AnyServer, req: Request, status: int, reason: str,
                 headers: Headers | None = None, *, tag: str | None = "") -> None:
        """Answer through the transaction; `tag=""` means "make one" (None: no To tag, for 100)."""
        to_tag = tag if tag != "" else (None if req.to_tag else self._tag())
        resp = self._response(req, status, reason, to_tag, headers or [])
        self._run(txn, txn.respond(resp, self.clock.now()))

    def _stateless(self, req: Request, peer: Address, status: int, reason: str) -> None:
        try:
            resp = build_response(req, status, reason)
        except ParseError:
            return
        self.send(resp.to_bytes(), peer)

    def _run(self, txn: AnyServer | AnyClient, actions: list[Any]) -> None:
        ctx = txn.context
        for action in actions:
            kind = type(action)
            if kind is Send and isinstance(ctx, _TxnCtx):
                self.send(action.data, ctx.peer)
            elif kind is DeliverRequest:
                self._on_ack(action.message)  # an RFC 2543 ACK matched the INVITE transaction
            elif kind is Deliver and isinstance(ctx, _TxnCtx) and ctx.call is not None:
                if action.message.status >= 200:
                    ctx.call.bye_status = action.message.status
                    self._notify(ctx.call)
            elif kind is Timeout and isinstance(ctx, _TxnCtx) and ctx.call is not None:
                ctx.call.bye_status = 408
                self._notify(ctx.call)
        self.txns.update(txn)
        if txn.terminated:
            txn.context = None
        self._arm()

    def _arm(self) -> None:
        if self._closed:
            return
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
            self._run(txn, actions)  # type: ignore[arg-type]
        self._arm()

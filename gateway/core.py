"""The gateway's transaction user: bytes in from a transport, actions out.

``SipCore.on_message`` is the whole hot path.  It parses (lazily), stamps the
top Via with ``received``/``rport`` (RFC 3581), matches server transactions,
and hands new requests to the registrar, the proxy or the gateway's own
OPTIONS answer.  Responses from downstream go to the client transaction
that sent the request.  Transaction timers live in one heap here, driven by
one clock callback, so thousands of transactions cost one asyncio timer.

Nothing here blocks or touches the database: provisioning data comes from
the directory snapshot, call records leave through a queue.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.calls import CallTracker
from gateway.clock import Clock, TimerHandle, protocol_view
from gateway.location import LocationService
from gateway.proxy import Proxy
from gateway.registrar import Registrar
from gateway.sip.errors import ParseError, SipError
from gateway.sip.message import Request, Response
from gateway.sip.parser import build_response, local_tag, parse_message, validate_for_proxy
from gateway.sip.transaction import (
    AnyClient,
    AnyServer,
    Deliver,
    DeliverRequest,
    Send,
    Timeout,
    TransactionTable,
)
from gateway.sip.uri import SipURI
from gateway.transport import Peer
from provisioning.directory import Directory

log = logging.getLogger("voiplab.core")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, REFER, MESSAGE, NOTIFY, PRACK"
SERVER_NAME = "voiplab/0.1"


@dataclass(slots=True)
class Identity:
    """Who the gateway is on the wire: hosts and ports that mean "me"."""

    domain: str
    hosts: set[str]  # lower-case hosts (IP literals without brackets, domain, advertised names)
    ports: dict[str, int]  # proto → port ("udp", "tcp", "tls")
    advertise: str  # host to put in Via and Record-Route toward IPv4 (or named) peers
    advertise6: str | None = None  # "[v6 address]" toward IPv6 peers, when we listen on IPv6 too

    def address_for(self, peer_host: str) -> str:
        """Our host as a peer of that address family must see it in Via and Record-Route."""
        if self.advertise6 is not None and ":" in peer_host:
            return self.advertise6
        return self.advertise

    def is_me(self, host: str, port: int | None) -> bool:
        if host.strip("[]").lower() not in self.hosts:
            return False
        return port is None or port in self.ports.values()


@dataclass(slots=True)
class ServerCtx:
    """What the gateway keeps beside a server transaction (``txn.context`` points here)."""

    txn: AnyServer
    request: Request
    reply_peer: Peer
    fork: Any = None  # proxy.Fork for proxied requests


@dataclass(slots=True)
class ClientCtx:
    """What the gateway keeps beside a client transaction (``txn.context`` points here)."""

    txn: AnyClient
    target: Peer
    fork: Any = None
    branch_index: int = 0
    on_final: Callable[[Response], None] | None = None  # for requests the gateway originates (CANCEL)


@dataclass(slots=True, frozen=True)
class Limits:
    """How long state may live when nobody ends it (like Kamailio's dialog default_timeout)."""

    max_call: float = 12 * 3600.0  # a confirmed call whose BYE never crossed the proxy
    max_setup: float = 300.0  # a call still setting up (Timer C should have ended it long before)
    housekeeping_real_seconds: float = 10.0  # how often, in real seconds, the sweep runs


@dataclass(slots=True)
class Stats:
    received: int = 0
    parse_errors: int = 0
    dropped: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def reply_peer_for(req: Request, peer: Peer) -> Peer:
    """Where responses to this request go (RFC 3261 §18.2.2 with RFC 3581 rport)."""
    if peer.reliable:
        return peer  # back over the same connection
    via = req.top_via
    if via.rport is not None:
        return peer
    return Peer(peer.proto, peer.host, via.port or 5060, 0)


class SipCore:
    def __init__(
        self,
        *,
        identity: Identity,
        clock: Clock,
        directory: Directory,
        registrar: Registrar,
        location: LocationService,
        calls: CallTracker,
        send: Callable[[bytes, Peer], None],
        proxy_factory: Callable[[SipCore], Proxy],
        limits: Limits | None = None,
    ) -> None:
        self.identity = identity
        #: protocol time (real seconds): transactions, bindings, nonces, Timer C, session timers
        self.clock = protocol_view(clock)
        #: business time (scaled): duration caps, dialog lifetime, fair-use months
        self.business_clock = clock
        self.directory = directory
        self.registrar = registrar
        self.location = location
        self.calls = calls
        self.send = send
        self.stats = Stats()
        self.txns = TransactionTable()
        self._timer_handle: TimerHandle | None = None
        self._timer_at = float("inf")
        self._branch_prefix = "z9hG4bK" + secrets.token_hex(4)
        self._branch_seq = itertools.count(1)
        self.proxy = proxy_factory(self)
        self.limits = limits or Limits()
        self._housekeeping = self.clock.call_later(self._housekeeping_delay(), self.housekeep)

    def _housekeeping_delay(self) -> float:
        return self.limits.housekeeping_real_seconds  # self.clock counts real seconds

    def housekeep(self) -> None:
        """Periodic, off the request path: expired bindings and nonce counts out, abandoned calls
        closed with a record."""
        self.location.sweep(self.clock.now())
        self.registrar.auth.nonces.sweep(self.clock.now())
        self.calls.expire(self.limits.max_call, self.limits.max_setup)
        self._housekeeping = self.clock.call_later(self._housekeeping_delay(), self.housekeep)

    def close(self) -> None:
        self._housekeeping.cancel()
        if self._timer_handle is not None:
            self._timer_handle.cancel()

    # -- entry point ---------------------------------------------------------------------
    def on_message(self, data: bytes, peer: Peer) -> None:
        self.stats.received += 1
        try:
            msg = parse_message(data)
        except SipError as exc:
            self.stats.parse_errors += 1
            self.answer_parse_error(exc, peer)
            return
        if isinstance(msg, Response):
            self._on_response(msg, peer)
            return
        try:
            self._on_request(msg, peer)
        except ParseError as exc:  # a header the decision needed was malformed
            self.stats.parse_errors += 1
            self._reply_stateless(msg, peer, exc.status, exc.reason)

    def answer_parse_error(self, exc: SipError, peer: Peer) -> None:
        """Answer an unparseable request with its status when enough of it was read; else drop it."""
        partial = exc.partial
        if isinstance(partial, Request) and partial.method != "ACK":
            try:
                self._reply_stateless(partial, peer, exc.status, exc.reason)
                return
            except ParseError:
                pass
        self.stats.dropped += 1
        log.debug("dropped unparseable message from %s: %s", peer, exc.reason)

    def _reply_stateless(self, req: Request, peer: Peer, status: int, reason: str,
                         headers: list[tuple[str, str]] | None = None) -> None:
        if req.method == "ACK":
            return
        resp = build_response(req, status, reason, headers=headers or [])
        self.send(resp.to_bytes(), reply_peer_for(req, peer))

    # -- requests --------------------------------------------------------------------------
    def _on_request(self, req: Request, peer: Peer) -> None:
        # validation first, even for retransmissions: it is what turns a malformed top Via into
        # an answerable 400 (RFC 4475 badinv01) before matching needs that Via
        validate_for_proxy(req)
        stamp_received(req, peer)
        method = req.method
        now = self.clock.now()
        txns = self.txns
        txn = txns.find_server(req)
        if txn is not None:
            self._run_server(txn.context, txn.on_request(req, now))  # type: ignore[arg-type]
            return
        if method == "ACK":
            self.proxy.on_ack(req, peer)  # 2xx ACK (or a stray one): routed end to end
            return
        if method == "CANCEL":
            self._on_cancel(req, peer, now)
            return
        txn = txns.new_server(req, peer.reliable, now)
        ctx = ServerCtx(txn, req, reply_peer_for(req, peer))
        txn.context = ctx
        try:
            self._dispatch_new(ctx, peer)
        except ParseError as exc:  # a header routing needed was malformed: answer through the transaction
            if ctx.txn.last_status < 200:
                self.respond(ctx, exc.status, exc.reason)
        except Exception:
            log.exception("error routing %s from %s", req.method, peer)
            if ctx.txn.last_status < 200:
                self.respond(ctx, 500, "Server Internal Error")

    def _dispatch_new(self, ctx: ServerCtx, peer: Peer) -> None:
        req = ctx.request
        method = req.method
        ruri = req.ruri
        if ruri.scheme not in ("sip", "sips") and not (method == "INVITE" and ruri.scheme == "urn"):
            self.respond(ctx, 416, "Unsupported URI Scheme")  # urn: is let through for urn:service:sos
            return
        require = req.get("proxy-require") if method != "REGISTER" else req.get("require")
        if require and method not in ("ACK", "CANCEL"):
            self.respond(ctx, 420, "Bad Extension", headers=[("Unsupported", require)])
            return
        if method == "REGISTER":
            resp = self.registrar.handle(req, peer, self.directory.snapshot, self.clock.now(), self.clock.wall())
            if resp.status == 401:  # a digest challenge: keeps no transaction
                self.send_statelessly(ctx, resp)
            else:
                self.respond_with(ctx, resp)
            return
        if req.to_tag is not None:
            self.proxy.in_dialog(ctx, peer)
            return
        if method == "OPTIONS" and isinstance(ruri, SipURI) and self.identity.is_me(ruri.host, ruri.port) and (
            ruri.user is None or req.max_forwards == 0
        ):
            self.respond(ctx, 200, "OK", headers=[
                ("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", "replaces, timer"),
                ("Server", SERVER_NAME),
            ])
            return
        if method in ("INVITE", "MESSAGE", "OPTIONS", "INFO", "REFER", "UPDATE"):
            self.proxy.new_request(ctx, peer)
            return
        if method in ("SUBSCRIBE", "PUBLISH"):
            self.respond(ctx, 489, "Bad Event")
            return
        if method in ("BYE", "PRACK", "NOTIFY"):
            self.respond(ctx, 481, "Call/Transaction Does Not Exist")
            return
        self.respond(ctx, 501, "Not Implemented", headers=[("Allow", ALLOW)])

    def _on_cancel(self, req: Request, peer: Peer, now: float) -> None:
        invite = self.txns.find_cancelled(req)
        txn = self.txns.new_server(req, peer.reliable, now)
        ctx = ServerCtx(txn, req, reply_peer_for(req, peer))
        txn.context = ctx
        if invite is None:
            self.respond(ctx, 481, "Call/Transaction Does Not Exist")
            return
        self.respond(ctx, 200, "OK")
        self.proxy.cancel(invite.context)  # type: ignore[arg-type]

    # -- responses -------------------------------------------------------------------------
    def _on_response(self, resp: Response, peer: Peer) -> None:
        try:
            txn = self.txns.find_client(resp)
            if txn is not None:
                self._run_client(txn.context, txn.on_response(resp, self.clock.now()))  # type: ignore[arg-type]
                return
            ours = (resp.top_via.branch or "").startswith(self._branch_prefix)
            if ours and resp.cseq.method == "INVITE" and 200 <= resp.status < 300:
                # A 2xx retransmission after our client transaction ended: forward statelessly (§16.7).
                self.proxy.forward_response_stateless(resp)
                return
        except ParseError:
            pass
        self.stats.dropped += 1  # not ours (e.g. RFC 4475 bcast, noreason): drop silently

    # -- transaction plumbing ---------------------------------------------------------------
    @property
    def branch_prefix(self) -> str:
        """Every branch this gateway creates starts with this (loop detection, stray responses)."""
        return self._branch_prefix

    def new_branch(self) -> str:
        return f"{self._branch_prefix}.{next(self._branch_seq):x}"

    def abandon(self, ctx: ServerCtx) -> None:
        """Drop a server transaction without answering (RFC 4320: no 408 to a non-INVITE)."""
        self.txns.remove(ctx.txn)
        ctx.txn.context = None
        ctx.fork = None

    def respond(self, ctx: ServerCtx, status: int, reason: str, *,
                headers: list[tuple[str, str]] | None = None, to_tag: str | None = None) -> None:
        tag = to_tag if to_tag is not None else (None if status == 100 else local_tag(ctx.request))
        resp = build_response(ctx.request, status, reason, to_tag=tag, headers=headers or [])
        self.respond_with(ctx, resp)

    def respond_statelessly(self, ctx: ServerCtx, status: int, reason: str, *,
                            headers: list[tuple[str, str]] | None = None) -> None:
        """A final answer that keeps no transaction (a digest challenge, like Kamailio's sl).

        The answer depends only on the request, so a retransmission is simply
        answered again (same To tag, fresh nonce), and the ACK of a non-2xx
        answer, finding no transaction and no Route of ours, is absorbed by the
        proxy's ACK path.  Nothing waits on Timer G/H/I or J for it.
        """
        self.send_statelessly(ctx, build_response(ctx.request, status, reason, to_tag=local_tag(ctx.request),
                                                  headers=headers or []))

    def send_statelessly(self, ctx: ServerCtx, resp: Response) -> None:
        self.send(resp.to_bytes(), ctx.reply_peer)
        self.abandon(ctx)

    def respond_with(self, ctx: ServerCtx, resp: Response) -> None:
        self._run_server(ctx, ctx.txn.respond(resp, self.clock.now()))

    def start_client(self, req: Request, target: Peer, *, fork: Any = None, branch_index: int = 0,
                     on_final: Callable[[Response], None] | None = None) -> ClientCtx:
        txn, actions = self.txns.new_client(req, target.reliable, self.clock.now())
        ctx = ClientCtx(txn, target, fork, branch_index, on_final)
        txn.context = ctx
        self._run_client(ctx, actions)
        return ctx

    def _run_server(self, ctx: ServerCtx, actions: list[Any]) -> None:
        for action in actions:
            kind = type(action)
            if kind is Send:
                self.send(action.data, ctx.reply_peer)
            elif kind is DeliverRequest:  # ACK matching an INVITE we answered 2xx (RFC 2543 peers)
                self.proxy.on_ack(action.message, ctx.reply_peer)
        txn = ctx.txn
        self.txns.update(txn)
        if txn.terminated:  # break the txn ↔ context ↔ fork cycles so refcounting frees them
            txn.context = None
            ctx.fork = None
        elif ctx.fork is None and ctx.request is not txn.request:
            ctx.request = txn.request  # the transaction kept only a husk (Timer J): so do we
        self._arm()

    def _run_client(self, ctx: ClientCtx, actions: list[Any]) -> None:
        for action in actions:
            kind = type(action)
            if kind is Send:
                self.send(action.data, ctx.target)
            elif kind is Deliver:
                if ctx.fork is not None:
                    self.proxy.on_branch_response(ctx, action.message)
                elif ctx.on_final is not None and action.message.status >= 200:
                    ctx.on_final(action.message)
            elif kind is Timeout and ctx.fork is not None:
                self.proxy.on_branch_timeout(ctx)
        txn = ctx.txn
        self.txns.update(txn)
        if txn.terminated:
            txn.context = None
            if ctx.fork is not None:
                self.proxy.branch_terminated(ctx)
                ctx.fork = None
        self._arm()

    # -- timers ----------------------------------------------------------------------------
    def _arm(self) -> None:
        """Keep one clock callback at the table's earliest deadline."""
        deadline = self.txns.next_deadline()
        if deadline is None or deadline >= self._timer_at:
            return
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        self._timer_at = deadline
        self._timer_handle = self.clock.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_handle = None
        self._timer_at = float("inf")
        for txn, actions in self.txns.expire(self.clock.now()):
            ctx = txn.context
            if isinstance(ctx, ServerCtx):
                self._run_server(ctx, actions)
            elif isinstance(ctx, ClientCtx):
                self._run_client(ctx, actions)
        self._arm()

    # -- introspection -----------------------------------------------------------------------
    def wall(self) -> datetime:
        return self.clock.wall()


def stamp_received(req: Request, peer: Peer) -> None:
    """RFC 3261 §18.2.1 ``received`` and RFC 3581 ``rport`` on the top Via, edited in place.

    The parsed Via is updated along with the header text, so matching and
    forwarding read it without parsing the Via a second time.
    """
    via = req.top_via
    params = via.params
    needs_received = via.host.strip("[]") != peer.host
    rport_flag = "rport" in params and params["rport"] is None
    if not needs_received and not rport_flag:
        return
    raw = via.raw
    if rport_flag:
        port = str(peer.port)
        raw = _set_via_param(raw, "rport", port)
        params["rport"] = port
    raw = _set_via_param(raw, "received", peer.host)
    params["received"] = peer.host
    via.raw = raw
    req.replace_top_via(raw, via)


def _set_via_param(via_value: str, name: str, param: str) -> str:
    parts = via_value.split(";")
    out = [parts[0]]
    replaced = False
    for part in parts[1:]:
        pname = part.split("=", 1)[0].strip().lower()
        if pname == name:
            out.append(f"{name}={param}")
            replaced = True
        else:
            out.append(part)
    if not replaced:
        out.append(f"{name}={param}")
    return ";".join(out)

"""SIP transactions (RFC 3261 §17, amended by RFC 6026) as pure state machines.

No sockets, no asyncio, no clock object: every entry point takes ``now`` (seconds
on the injected clock, a float) and returns a list of *actions* for the owner
to carry out; each transaction exposes ``deadline`` (its earliest pending timer,
or None) and ``on_timer(now)``.  The owner keeps one heap of deadlines for all
transactions (:class:`TransactionTable` does that) instead of one asyncio timer
per transaction, which is what lets a proxy run thousands of them per second.

Actions are small objects compared by ``type(action) is Send`` (NamedTuples
when they carry data; field-less ones are singletons-by-type, see ``_Signal``):

===================  =========================================================
``Send(data)``       put these bytes on the wire towards the transaction's peer
``Deliver(resp)``    client: a response for the transaction user (TU)
``DeliverRequest``   server INVITE in Accepted: the ACK for a 2xx, for the TU
``Timeout()``        B/F or the CANCEL guard (client), H (server) fired; TU: 408
``TransportError()`` the owner reported a transport failure (RFC 3261 §17.1.4)
``Terminated()``     the transaction is over; forget it
===================  =========================================================

State tables (RFC 3261 figures 5–8 with RFC 6026's Accepted state):

Client INVITE  Calling --1xx--> Proceeding --2xx--> Accepted --M--> Terminated
               Calling/Proceeding --300-699 (send ACK)--> Completed --D--> Terminated
               Calling --B--> Terminated (Timeout); A retransmits in Calling
Client non-INVITE  Trying --1xx--> Proceeding --final--> Completed --K--> Terminated
               Trying/Proceeding --F--> Terminated (Timeout); E retransmits
Server INVITE  Proceeding --2xx--> Accepted --L--> Terminated
               Proceeding --300-699--> Completed --ACK--> Confirmed --I--> Terminated
               Completed --H--> Terminated (Timeout); G retransmits the final
Server non-INVITE  Trying --1xx--> Proceeding --final--> Completed --J--> Terminated

Over reliable transports (TCP/TLS) the retransmission timers A, E, G are never
armed and the wait timers D, I, J, K are zero: the transaction terminates in
the same call that would have started them.

Not done here, left to the TU: the server INVITE transaction does not send
"100 Trying" on its own after 200 ms (the gateway answers 100 at once), and
proxy Timer C belongs to the proxy.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from gateway.sip.message import Request, Response

__all__ = [
    "DEFAULT_TIMERS",
    "T1",
    "T2",
    "T4",
    "Action",
    "ClientTransaction",
    "Deliver",
    "DeliverRequest",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "Send",
    "ServerTransaction",
    "State",
    "Terminated",
    "Timeout",
    "Timers",
    "Transaction",
    "TransactionTable",
    "TransportError",
    "client_key",
    "server_key",
]

T1 = 0.5
T2 = 4.0
T4 = 5.0

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class Timers:
    """Timer base values (RFC 3261 table 4); scale them for fast labs, not in production."""

    t1: float = T1
    t2: float = T2
    t4: float = T4
    d: float = 32.0  # Timer D over unreliable transports: "> 32 s"

    def __post_init__(self) -> None:
        # A zero or negative interval would make retransmission timers spin.
        if not (self.t1 > 0 and self.t2 >= self.t1 and self.t4 >= 0 and self.d >= 0):
            raise ValueError(f"invalid SIP timers {self!r}")


DEFAULT_TIMERS = Timers()


# --------------------------------------------------------------------------
# actions


class Send(NamedTuple):
    data: bytes


class Deliver(NamedTuple):
    message: Response


class DeliverRequest(NamedTuple):
    message: Request


class _Signal:
    """A field-less action.  Not a NamedTuple: two empty tuples would compare equal,
    so ``Timeout() == Terminated()`` would hold.  Equal by type instead."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Timeout(_Signal):
    __slots__ = ()


class TransportError(_Signal):
    __slots__ = ()


class Terminated(_Signal):
    __slots__ = ()


Action = Send | Deliver | DeliverRequest | Timeout | TransportError | Terminated

_TIMEOUT = Timeout()
_TRANSPORT_ERROR = TransportError()
_TERMINATED = Terminated()


class State(IntEnum):
    CALLING = 1
    TRYING = 2
    PROCEEDING = 3
    COMPLETED = 4
    CONFIRMED = 5
    ACCEPTED = 6
    TERMINATED = 7


_CALLING = State.CALLING
_TRYING = State.TRYING
_PROCEEDING = State.PROCEEDING
_COMPLETED = State.COMPLETED
_CONFIRMED = State.CONFIRMED
_ACCEPTED = State.ACCEPTED
_TERMINATED_STATE = State.TERMINATED


# --------------------------------------------------------------------------
# matching keys


ServerKey = tuple[object, ...]
ClientKey = tuple[str, str]


def server_key(req: Request, method: str | None = None) -> ServerKey:
    """Key matching a request to its server transaction (RFC 3261 §17.2.3).

    Raises :class:`~gateway.sip.errors.ParseError` when the top Via (or, for
    RFC 2543 peers, From/Call-ID/CSeq) is malformed.

    With an RFC 3261 branch (magic cookie): branch, sent-by and method, where
    ACK maps to INVITE.  ``method="INVITE"`` gives the key of the INVITE a
    CANCEL refers to (RFC 3261 §9.2).  Without the cookie (RFC 2543 peers):
    Request-URI, From tag, Call-ID, CSeq number, top Via and method.  The To
    tag is left out of the RFC 2543 key so an ACK (whose To tag is the one our
    response added) finds its INVITE; :meth:`TransactionTable.find_server`
    then checks it with :meth:`ServerTransaction.matches_rfc2543`.  Owners
    that keep their own dict should do the same when ``key[0] is None``.
    """
    via = req.top_via
    branch = via.branch
    m = method or req.method
    if m == "ACK":
        m = "INVITE"
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        host, port = via.sent_by
        return (branch, host.lower(), port, m)
    host, port = via.sent_by
    return (
        None,
        req.uri,
        req.from_tag,
        req.call_id,
        req.cseq.seq,
        via.transport,
        host.lower(),
        port,
        branch,
        m,
    )


def client_key(resp: Response) -> ClientKey:
    """Key matching a response to its client transaction (RFC 3261 §17.1.3): branch + CSeq method."""
    return (resp.top_via.branch or "", resp.cseq.method)


# --------------------------------------------------------------------------
# base


class Transaction:
    """What every transaction has: the request, transport kind, state and timers.

    At most two timers run at once: a retransmission timer (A, E or G) and a
    wait/timeout timer (B, D, F, H, I, J, K, L, M).  ``deadline`` is the
    earlier of the two, kept as a plain attribute so owners read it for free.
    ``context`` is the owner's: peer address, fork, whatever it needs, so it
    keeps one dict instead of two.
    """

    __slots__ = (
        "_end_at",
        "_end_name",
        "_retx_at",
        "_retx_interval",
        "_retx_name",
        "_scheduled",
        "_table",
        "context",
        "deadline",
        "key",
        "reliable",
        "request",
        "state",
        "timers",
    )

    request: Request
    reliable: bool
    timers: Timers
    state: State
    deadline: float | None
    key: tuple[object, ...]
    context: object

    def __init__(self, request: Request, reliable: bool, timers: Timers) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.deadline = None
        self.context = None
        self._retx_at: float | None = None
        self._retx_interval = 0.0
        self._retx_name = ""
        self._end_at: float | None = None
        self._end_name = ""
        self._scheduled: float | None = None
        self._table: TransactionTable | None = None

    @property
    def terminated(self) -> bool:
        return self.state is _TERMINATED_STATE

    @property
    def pending_timers(self) -> dict[str, float]:
        """Running timers by RFC letter, e.g. ``{"A": 1.5, "B": 32.0}`` (for tests and debugging)."""
        out: dict[str, float] = {}
        if self._retx_at is not None:
            out[self._retx_name] = self._retx_at
        if self._end_at is not None:
            out[self._end_name] = self._end_at
        return out

    def _update_deadline(self) -> None:
        r = self._retx_at
        e = self._end_at
        if r is None:
            self.deadline = e
        elif e is None or r < e:
            self.deadline = r
        else:
            self.deadline = e

    def _terminate(self) -> None:
        self.state = _TERMINATED_STATE
        self._retx_at = None
        self._end_at = None
        self.deadline = None

    def on_transport_error(self, now: float) -> list[Action]:
        """The transport could not deliver (RFC 3261 §17.1.4 / §17.2.4): tell the TU, stop."""
        if self.state is _TERMINATED_STATE:
            return []
        self._terminate()
        return [_TRANSPORT_ERROR, _TERMINATED]

    def on_timer(self, now: float) -> list[Action]:
        """Fire the timers due at ``now``.

        When the wait/timeout timer is due, it alone fires: retransmissions
        that were due before it would be pointless now.  Otherwise the
        retransmission timer advances past ``now`` on its own schedule with at
        most one Send, so a late wake-up (a stalled loop) never sends a burst.
        """
        if self.state is _TERMINATED_STATE:
            return []
        actions: list[Action] = []
        e = self._end_at
        if e is not None and e <= now:
            self._end_at = None
            self._fire_end(actions)
            return actions
        r = self._retx_at
        if r is not None and r <= now:
            while r <= now:
                self._retx_interval = self._next_interval()
                r += self._retx_interval
            self._retx_at = r
            actions.append(Send(self._retx_data()))
            self._update_deadline()
        return actions

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.name} {self.request.method} key={self.key!r}>"

    # subclass hooks (only called when the corresponding timer runs)
    def _fire_end(self, actions: list[Action]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _next_interval(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _retx_data(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError


# --------------------------------------------------------------------------
# client transactions


class ClientTransaction(Transaction):
    """Common part of the client transactions: holds the serialised request."""

    __slots__ = ("_data",)

    key: ClientKey

    def __init__(
        self, request: Request, reliable: bool, now: float, timers: Timers = DEFAULT_TIMERS
    ) -> None:
        super().__init__(request, reliable, timers)
        self._data = request.to_bytes()
        self.key = (request.top_via.branch or "", request.method)

    def start(self, now: float) -> list[Action]:
        raise NotImplementedError  # pragma: no cover - abstract

    def on_response(self, resp: Response, now: float) -> list[Action]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _retx_data(self) -> bytes:
        return self._data


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 with RFC 6026 §8.4 (Accepted state, Timer M).

    The ACK for a 300–699 response is built and sent here (same branch,
    §17.1.1.3) and re-sent for every retransmission of that response; the TU
    never sees the retransmissions.  2xx responses, first and retransmitted,
    all go to the TU, which ACKs them end to end.
    """

    __slots__ = ("_ack", "_cancel_guard")

    def __init__(
        self, request: Request, reliable: bool, now: float, timers: Timers = DEFAULT_TIMERS
    ) -> None:
        super().__init__(request, reliable, now, timers)
        self.state = _CALLING
        self._ack: bytes | None = None
        self._cancel_guard: float | None = None

    def start(self, now: float) -> list[Action]:
        """Send the INVITE, arm Timer A (unreliable only) and Timer B."""
        t1 = self.timers.t1
        if not self.reliable:
            self._retx_at = now + t1
            self._retx_interval = t1
            self._retx_name = "A"
        self._end_at = now + 64 * t1
        self._end_name = "B"
        self._update_deadline()
        return [Send(self._data)]

    def on_response(self, resp: Response, now: float) -> list[Action]:
        state = self.state
        status = resp.status
        if state is _CALLING or state is _PROCEEDING:
            if status < 200:
                self.state = _PROCEEDING
                self._retx_at = None
                # Timer B only guards the Calling state; keep a CANCEL guard if armed.
                self._end_at = self._cancel_guard
                self._end_name = "CANCEL"
                self._update_deadline()
                return [Deliver(resp)]
            self._retx_at = None
            if status < 300:
                self.state = _ACCEPTED
                self._end_at = now + 64 * self.timers.t1
                self._end_name = "M"
                self._update_deadline()
                return [Deliver(resp)]
            ack = self._ack = self._build_ack(resp)
            if self.reliable:
                self._terminate()
                return [Send(ack), Deliver(resp), _TERMINATED]
            self.state = _COMPLETED
            self._end_at = now + self.timers.d
            self._end_name = "D"
            self._update_deadline()
            return [Send(ack), Deliver(resp)]
        if state is _ACCEPTED:
            # RFC 6026 §8.4: 2xx retransmissions (and 2xx from other forks) go to the TU.
            if 200 <= status < 300:
                return [Deliver(resp)]
            return []
        if state is _COMPLETED and status >= 300 and self._ack is not None:
            return [Send(self._ack)]
        return []

    def cancel_request(self, now: float | None = None) -> Request:
        """A CANCEL for this INVITE (RFC 3261 §9.1), as a fresh Request each call.

        Same Request-URI, Call-ID, From, To, CSeq number and top Via (so the
        same branch), the INVITE's Route set, no body.  Send it in its own
        non-INVITE client transaction.  With ``now``, arm the §9.1 guard: when
        no final response arrives within 64*T1, the transaction times out
        instead of waiting forever in Proceeding.
        """
        req = self.request
        headers = [["via", "Via", req.top_via.raw]]
        headers.extend(["route", "Route", route] for route in req.get_all("route"))
        headers += [
            ["max-forwards", "Max-Forwards", "70"],
            ["from", "From", req.get("from") or ""],
            ["to", "To", req.get("to") or ""],
            ["call-id", "Call-ID", req.call_id],
            ["cseq", "CSeq", f"{req.cseq.seq} CANCEL"],
        ]
        cancel = Request("CANCEL", req.uri, headers)
        if now is not None and self.state is not _TERMINATED_STATE and self._cancel_guard is None:
            guard = self._cancel_guard = now + 64 * self.timers.t1
            if self.state is _PROCEEDING:
                self._end_at = guard
                self._end_name = "CANCEL"
                self._update_deadline()
        return cancel

    def _build_ack(self, resp: Response) -> bytes:
        """ACK for a non-2xx final (RFC 3261 §17.1.1.3): INVITE's R-URI, top Via, From, Route set;
        the response's To (with its tag)."""
        req = self.request
        lines = [
            f"ACK {req.uri} SIP/2.0",
            f"Via: {req.top_via.raw}",
        ]
        lines.extend(f"Route: {route}" for route in req.get_all("route"))
        lines += [
            "Max-Forwards: 70",
            f"From: {req.get('from')}",
            f"To: {resp.get('to')}",
            f"Call-ID: {req.call_id}",
            f"CSeq: {req.cseq.seq} ACK",
            "Content-Length: 0",
            "",
            "",
        ]
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")

    def _fire_end(self, actions: list[Action]) -> None:
        state = self.state
        self._terminate()
        if state is _CALLING or state is _PROCEEDING:  # Timer B, or the CANCEL guard
            actions.append(_TIMEOUT)
        actions.append(_TERMINATED)

    def _next_interval(self) -> float:
        return self._retx_interval * 2  # Timer A doubles without the T2 cap


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2: Timer E retransmits (doubling up to T2), F times out, K absorbs."""

    __slots__ = ()

    def __init__(
        self, request: Request, reliable: bool, now: float, timers: Timers = DEFAULT_TIMERS
    ) -> None:
        super().__init__(request, reliable, now, timers)
        self.state = _TRYING

    def start(self, now: float) -> list[Action]:
        """Send the request, arm Timer E (unreliable only) and Timer F."""
        t1 = self.timers.t1
        if not self.reliable:
            self._retx_at = now + t1
            self._retx_interval = t1
            self._retx_name = "E"
        self._end_at = now + 64 * t1
        self._end_name = "F"
        self._update_deadline()
        return [Send(self._data)]

    def on_response(self, resp: Response, now: float) -> list[Action]:
        state = self.state
        if state is not _TRYING and state is not _PROCEEDING:
            return []  # Completed absorbs retransmitted finals (Timer K)
        if resp.status < 200:
            self.state = _PROCEEDING
            return [Deliver(resp)]
        if self.reliable:
            self._terminate()
            return [Deliver(resp), _TERMINATED]
        self.state = _COMPLETED
        self._retx_at = None
        self._end_at = now + self.timers.t4
        self._end_name = "K"
        self._update_deadline()
        return [Deliver(resp)]

    def _fire_end(self, actions: list[Action]) -> None:
        state = self.state
        self._terminate()
        if state is not _COMPLETED:  # Timer F
            actions.append(_TIMEOUT)
        actions.append(_TERMINATED)

    def _next_interval(self) -> float:
        if self.state is _PROCEEDING:
            return self.timers.t2
        return min(self._retx_interval * 2, self.timers.t2)


# --------------------------------------------------------------------------
# server transactions


class ServerTransaction(Transaction):
    """Common part of the server transactions: remembers the last response sent."""

    __slots__ = ("_last", "_last_response", "_status")

    def __init__(
        self, request: Request, reliable: bool, now: float, timers: Timers = DEFAULT_TIMERS
    ) -> None:
        super().__init__(request, reliable, timers)
        self._last: bytes | None = None
        self._last_response: Response | None = None
        self._status = 0
        self.key = server_key(request)

    @property
    def last_status(self) -> int:
        """Status of the last response sent (0 before the first)."""
        return self._status

    def matches_rfc2543(self, req: Request) -> bool:
        """The To-tag half of RFC 2543 matching (§17.2.3), which the key leaves out.

        An ACK must carry the To tag of the response this transaction sent;
        any other request (retransmission, or CANCEL of this INVITE) the To
        tag of the request that created it.
        """
        if req.method == "ACK":
            resp = self._last_response
            return resp is not None and req.to_tag == resp.to_tag
        return req.to_tag == self.request.to_tag

    def on_request(self, req: Request, now: float) -> list[Action]:
        raise NotImplementedError  # pragma: no cover - abstract

    def respond(self, resp: Response, now: float) -> list[Action]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _retx_data(self) -> bytes:
        assert self._last is not None
        return self._last


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 with RFC 6026 §8.5–8.7.

    A 2xx moves to Accepted (Timer L): retransmitted INVITEs are absorbed,
    2xx retransmissions from the TU are sent, an ACK that matches (only RFC
    2543 peers make one match) goes to the TU as ``DeliverRequest``.  A
    300–699 moves to Completed: Timer G retransmits it until the ACK arrives
    (Confirmed, Timer I) or Timer H gives up.
    """

    __slots__ = ()

    def __init__(
        self, request: Request, reliable: bool, now: float, timers: Timers = DEFAULT_TIMERS
    ) -> None:
        super().__init__(request, reliable, now, timers)
        self.state = _PROCEEDING

    def on_request(self, req: Request, now: float) -> list[Action]:
        state = self.state
        if req.method == "ACK":
            if state is _COMPLETED:
                self._retx_at = None
                if self.reliable:
                    self._terminate()
                    return [_TERMINATED]
                self.state = _CONFIRMED
                self._end_at = now + self.timers.t4
                self._end_name = "I"
                self._update_deadline()
                return []
            if state is _ACCEPTED:
                return [DeliverRequest(req)]
            return []  # Confirmed absorbs ACK retransmissions
        # A retransmitted INVITE.
        if (state is _PROCEEDING or state is _COMPLETED) and self._last is not None:
            return [Send(self._last)]
        return []  # nothing sent yet, or Accepted/Confirmed: absorbed

    def respond(self, resp: Response, now: float) -> list[Action]:
        state = self.state
        status = resp.status
        if state is _PROCEEDING:
            data = self._last = resp.to_bytes()
            self._last_response = resp
            self._status = resp.status
            if status < 200:
                return [Send(data)]
            t1 = self.timers.t1
            if status < 300:
                self.state = _ACCEPTED
                self._end_at = now + 64 * t1
                self._end_name = "L"
            else:
                self.state = _COMPLETED
                if not self.reliable:
                    self._retx_at = now + t1
                    self._retx_interval = t1
                    self._retx_name = "G"
                self._end_at = now + 64 * t1
                self._end_name = "H"
            self._update_deadline()
            return [Send(data)]
        if state is _ACCEPTED and 200 <= status < 300:
            return [Send(resp.to_bytes())]  # the TU's own 2xx retransmission
        return []

    def _fire_end(self, actions: list[Action]) -> None:
        state = self.state
        self._terminate()
        if state is _COMPLETED:  # Timer H: the ACK never came
            actions.append(_TIMEOUT)
        actions.append(_TERMINATED)

    def _next_interval(self) -> float:
        return min(self._retx_interval * 2, self.timers.t2)


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2: absorbs request retransmissions, Timer J keeps the final for them."""

    __slots__ = ()

    def __init__(
        self, request: Request, reliable: bool, now: float, timers: Timers = DEFAULT_TIMERS
    ) -> None:
        super().__init__(request, reliable, now, timers)
        self.state = _TRYING

    def on_request(self, req: Request, now: float) -> list[Action]:
        if self._last is not None and (self.state is _PROCEEDING or self.state is _COMPLETED):
            return [Send(self._last)]
        return []

    def respond(self, resp: Response, now: float) -> list[Action]:
        state = self.state
        if state is not _TRYING and state is not _PROCEEDING:
            return []  # Completed discards further responses from the TU
        status = self._status = resp.status
        data = self._last = resp.to_bytes()
        self._last_response = resp
        if status < 200:
            self.state = _PROCEEDING
            return [Send(data)]
        if self.reliable:
            self._terminate()
            return [Send(data), _TERMINATED]
        self.state = _COMPLETED
        self._end_at = now + 64 * self.timers.t1
        self._end_name = "J"
        self._update_deadline()
        # Completed only resends ``_last`` for 32 s (Timer J): let the parsed request and response
        # go, keeping the To header that RFC 2543 matching compares (a REGISTER storm held ~5 KB
        # per exchange here)
        self._last_response = None
        self.request = self.request.husk()
        return [Send(data)]

    def _fire_end(self, actions: list[Action]) -> None:
        self._terminate()
        actions.append(_TERMINATED)

    def _next_interval(self) -> float:  # pragma: no cover - no retransmission timer
        raise AssertionError("non-INVITE server transactions never retransmit on a timer")


# --------------------------------------------------------------------------
# table


AnyServer = InviteServerTransaction | NonInviteServerTransaction
AnyClient = InviteClientTransaction | NonInviteClientTransaction


class TransactionTable:
    """All live transactions of one endpoint: two dicts by key plus one heap of deadlines.

    The heap uses lazy deletion: an entry is ``(deadline, seq, txn)`` and is
    ignored when it no longer equals the deadline the table last scheduled for
    that transaction, or the transaction left the table.  After calling any
    ``on_*``/``respond`` method yourself, call :meth:`update` so a new deadline
    is scheduled and a terminated transaction is dropped.
    """

    __slots__ = ("_client", "_heap", "_seq", "_server", "timers")

    def __init__(self, timers: Timers = DEFAULT_TIMERS) -> None:
        self.timers = timers
        self._server: dict[tuple[object, ...], AnyServer] = {}
        self._client: dict[tuple[object, ...], AnyClient] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._server) + len(self._client)

    # -- creation -------------------------------------------------------------------
    def new_server(self, req: Request, reliable: bool, now: float) -> AnyServer:
        """Create and add the server transaction for a request that matched none."""
        txn: AnyServer
        if req.method == "INVITE":
            txn = InviteServerTransaction(req, reliable, now, self.timers)
        else:
            txn = NonInviteServerTransaction(req, reliable, now, self.timers)
        self.add(txn)
        return txn

    def new_client(
        self, req: Request, reliable: bool, now: float
    ) -> tuple[AnyClient, list[Action]]:
        """Create, add and start a client transaction; returns it with its first actions."""
        txn: AnyClient
        if req.method == "INVITE":
            txn = InviteClientTransaction(req, reliable, now, self.timers)
        else:
            txn = NonInviteClientTransaction(req, reliable, now, self.timers)
        self.add(txn)
        actions = txn.start(now)
        self.update(txn)
        return txn, actions

    def add(self, txn: Transaction) -> None:
        """Store ``txn`` under its key (replacing a terminated or stale holder) and schedule it."""
        if isinstance(txn, ServerTransaction):
            assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
            old_s = self._server.get(txn.key)
            if old_s is not None and old_s is not txn:
                old_s._table = None
            self._server[txn.key] = txn
        else:
            assert isinstance(txn, InviteClientTransaction | NonInviteClientTransaction)
            old_c = self._client.get(txn.key)
            if old_c is not None and old_c is not txn:
                old_c._table = None
            self._client[txn.key] = txn
        txn._table = self
        self._schedule(txn)

    def remove(self, txn: Transaction) -> None:
        if txn._table is not self:
            return
        txn._table = None
        txn._scheduled = None
        table: dict[tuple[object, ...], AnyServer] | dict[tuple[object, ...], AnyClient]
        table = self._server if isinstance(txn, ServerTransaction) else self._client
        if table.get(txn.key) is txn:
            del table[txn.key]

    def update(self, txn: Transaction) -> None:
        """Re-read ``txn`` after driving it: drop it when terminated, else schedule its deadline."""
        if txn.state is _TERMINATED_STATE:
            self.remove(txn)
        elif txn._table is self:
            self._schedule(txn)

    # -- matching -------------------------------------------------------------------
    def find_server(self, req: Request) -> AnyServer | None:
        """The server transaction a request belongs to (ACK finds its INVITE), if any."""
        key = server_key(req)
        txn = self._server.get(key)
        if txn is not None and key[0] is None and not txn.matches_rfc2543(req):
            return None
        return txn

    def find_cancelled(self, cancel: Request) -> InviteServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (RFC 3261 §9.2)."""
        key = server_key(cancel, "INVITE")
        txn = self._server.get(key)
        if not isinstance(txn, InviteServerTransaction):
            return None
        if key[0] is None and not txn.matches_rfc2543(cancel):
            return None
        return txn

    def find_client(self, resp: Response) -> AnyClient | None:
        return self._client.get(client_key(resp))

    # -- timers ---------------------------------------------------------------------
    def _schedule(self, txn: Transaction) -> None:
        d = txn.deadline
        if d is None:
            return
        s = txn._scheduled
        if s is not None and s <= d:
            return  # an entry at or before d exists; it re-schedules when it pops
        txn._scheduled = d
        heapq.heappush(self._heap, (d, next(self._seq), txn))

    def next_deadline(self) -> float | None:
        """Earliest time :meth:`expire` has work (possibly a little early, never late)."""
        heap = self._heap
        while heap:
            d, _, txn = heap[0]
            if txn._table is self and txn._scheduled == d:
                return d
            heapq.heappop(heap)
        return None

    def expire(self, now: float) -> list[tuple[Transaction, list[Action]]]:
        """Run every timer due at ``now``; terminated transactions leave the table."""
        out: list[tuple[Transaction, list[Action]]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            d, _, txn = heapq.heappop(heap)
            if txn._table is not self or txn._scheduled != d:
                continue
            txn._scheduled = None
            deadline = txn.deadline
            if deadline is None:
                continue
            if deadline > now:
                self._schedule(txn)
                continue
            actions = txn.on_timer(now)
            self.update(txn)
            out.append((txn, actions))
        return out

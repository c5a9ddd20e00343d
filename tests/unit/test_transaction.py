"""RFC 3261 §17 / RFC 6026 transactions under a fake clock (plain floats).

Timer schedules are written out as tables, h11-style: a script of events at
given times, and the exact log of (time, actions) the RFC prescribes.
Timers run at each transaction's own ``deadline``; nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.sip.message import Request, Response
from gateway.sip.parser import build_response, parse_message
from gateway.sip.transaction import (
    DEFAULT_TIMERS,
    Action,
    Deliver,
    DeliverRequest,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Send,
    State,
    Terminated,
    Timeout,
    Timers,
    Transaction,
    TransportError,
)

REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 404: "Not Found", 486: "Busy Here"}


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKaaa",
    host: str = "192.0.2.1",
    port: int = 5060,
    transport: str = "UDP",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    ruri: str = "sip:bob@example.test",
    routes: tuple[str, ...] = (),
    extra_via: bool = False,
) -> Request:
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {host}:{port};branch={branch}",
    ]
    if extra_via:
        lines.append("Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKupstream;received=198.51.100.7")
    lines += [f"Route: {r}" for r in routes]
    lines += [
        "Max-Forwards: 69",
        'From: "Alice" <sip:alice@example.test>;tag=from1',
        "To: <sip:bob@example.test>" + (f";tag={to_tag}" if to_tag else ""),
        "Call-ID: call-1@example.test",
        f"CSeq: {cseq} {cseq_method or method}",
        "Content-Type: application/sdp",
        "",
        "v=0",
    ]
    body = "\r\n".join(lines[lines.index("") + 1 :]).encode()
    head = "\r\n".join(lines[: lines.index("")])
    msg = parse_message(f"{head}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    assert isinstance(msg, Request)
    return msg


def response(req: Request, status: int, to_tag: str | None = "callee1") -> Response:
    """A response as a client transaction receives it: built, serialised, parsed."""
    built = build_response(req, status, REASONS.get(status, "Whatever"), to_tag=to_tag)
    msg = parse_message(built.to_bytes())
    assert isinstance(msg, Response)
    return msg


def reply(req: Request, status: int) -> Response:
    """A response as the TU hands it to a server transaction."""
    return build_response(req, status, REASONS.get(status, "Whatever"), to_tag="srv1")


def names(actions: list[Action]) -> tuple[str, ...]:
    return tuple(type(a).__name__ for a in actions)


# ---------------------------------------------------------------------------
# Timer tables

Event = tuple[float, str, Any]


def run(
    txn: Transaction, script: list[Event], until: float = 1000.0
) -> list[tuple[float, tuple[str, ...]]]:
    """Play ``script`` against ``txn``, firing timers exactly at ``txn.deadline``."""
    log: list[tuple[float, tuple[str, ...]]] = []
    req = txn.request

    def fire_until(t: float) -> None:
        while txn.deadline is not None and txn.deadline <= t:
            at = txn.deadline
            # One tick early nothing happens: timers are never early.
            assert txn.on_timer(at - 1e-6) == []
            log.append((at, names(txn.on_timer(at))))

    for at, op, arg in script:
        fire_until(at)
        if op == "start":
            assert isinstance(txn, InviteClientTransaction | NonInviteClientTransaction)
            actions = txn.start(at)
        elif op == "response":
            assert isinstance(txn, InviteClientTransaction | NonInviteClientTransaction)
            actions = txn.on_response(response(req, arg), at)
        elif op == "respond":
            assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
            actions = txn.respond(reply(req, arg), at)
        elif op == "request":
            assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
            retrans = req if arg == req.method else request(arg, to_tag="srv1")
            actions = txn.on_request(retrans, at)
        else:  # pragma: no cover - table typo
            raise AssertionError(op)
        log.append((at, names(actions)))
    fire_until(until)
    return log


S, D, T, TO, DR = "Send", "Deliver", "Terminated", "Timeout", "DeliverRequest"

# Retransmission times worked out from RFC 3261 §17: A doubles (no cap),
# E and G double up to T2 = 4 s, in Proceeding E is T2; B = F = H = J = L = M
# = 64*T1 = 32 s, D = 32 s, I = K = T4 = 5 s; reliable transports arm no
# retransmission timer and zero D, I, J, K.
TIMER_TABLE: list[
    tuple[
        str, Callable[..., Transaction], str, bool, list[Event], list[tuple[float, tuple[str, ...]]]
    ]
] = [
    (
        "ICT Timer A doubles, Timer B times out",
        InviteClientTransaction,
        "INVITE",
        False,
        [(0.0, "start", None)],
        [
            (0.0, (S,)),
            (0.5, (S,)),
            (1.5, (S,)),
            (3.5, (S,)),
            (7.5, (S,)),
            (15.5, (S,)),
            (31.5, (S,)),
            (32.0, (TO, T)),
        ],
    ),
    (
        "ICT reliable: no Timer A",
        InviteClientTransaction,
        "INVITE",
        True,
        [(0.0, "start", None)],
        [(0.0, (S,)), (32.0, (TO, T))],
    ),
    (
        "ICT 1xx stops A and B",
        InviteClientTransaction,
        "INVITE",
        False,
        [(0.0, "start", None), (0.7, "response", 180), (40.0, "response", 486)],
        [(0.0, (S,)), (0.5, (S,)), (0.7, (D,)), (40.0, (S, D)), (72.0, (T,))],
    ),
    (
        "ICT non-2xx: ACK, Timer D absorbs retransmissions",
        InviteClientTransaction,
        "INVITE",
        False,
        [
            (0.0, "start", None),
            (1.0, "response", 486),
            (2.0, "response", 486),
            (20.0, "response", 486),
        ],
        [(0.0, (S,)), (0.5, (S,)), (1.0, (S, D)), (2.0, (S,)), (20.0, (S,)), (33.0, (T,))],
    ),
    (
        "ICT non-2xx over TCP: Timer D is zero",
        InviteClientTransaction,
        "INVITE",
        True,
        [(0.0, "start", None), (1.0, "response", 486)],
        [(0.0, (S,)), (1.0, (S, D, T))],
    ),
    (
        "ICT 2xx: Accepted, Timer M, 2xx retransmissions to the TU",
        InviteClientTransaction,
        "INVITE",
        False,
        [
            (0.0, "start", None),
            (0.2, "response", 200),
            (1.0, "response", 200),
            (2.0, "response", 180),
        ],
        [(0.0, (S,)), (0.2, (D,)), (1.0, (D,)), (2.0, ()), (32.2, (T,))],
    ),
    (
        "ICT 2xx over TCP still waits Timer M",
        InviteClientTransaction,
        "INVITE",
        True,
        [(0.0, "start", None), (0.2, "response", 200)],
        [(0.0, (S,)), (0.2, (D,)), (32.2, (T,))],
    ),
    (
        "NICT Timer E doubles up to T2, Timer F times out",
        NonInviteClientTransaction,
        "BYE",
        False,
        [(0.0, "start", None)],
        [
            (0.0, (S,)),
            (0.5, (S,)),
            (1.5, (S,)),
            (3.5, (S,)),
            (7.5, (S,)),
            (11.5, (S,)),
            (15.5, (S,)),
            (19.5, (S,)),
            (23.5, (S,)),
            (27.5, (S,)),
            (31.5, (S,)),
            (32.0, (TO, T)),
        ],
    ),
    (
        "NICT in Proceeding retransmits every T2",
        NonInviteClientTransaction,
        "OPTIONS",
        False,
        [(0.0, "start", None), (0.2, "response", 100)],
        [
            (0.0, (S,)),
            (0.2, (D,)),
            (0.5, (S,)),
            (4.5, (S,)),
            (8.5, (S,)),
            (12.5, (S,)),
            (16.5, (S,)),
            (20.5, (S,)),
            (24.5, (S,)),
            (28.5, (S,)),
            (32.0, (TO, T)),
        ],
    ),
    (
        "NICT reliable: no Timer E",
        NonInviteClientTransaction,
        "REGISTER",
        True,
        [(0.0, "start", None)],
        [(0.0, (S,)), (32.0, (TO, T))],
    ),
    (
        "NICT final: Timer K absorbs retransmissions",
        NonInviteClientTransaction,
        "BYE",
        False,
        [(0.0, "start", None), (0.6, "response", 200), (3.0, "response", 200)],
        [(0.0, (S,)), (0.5, (S,)), (0.6, (D,)), (3.0, ()), (5.6, (T,))],
    ),
    (
        "NICT final over TCP: Timer K is zero",
        NonInviteClientTransaction,
        "BYE",
        True,
        [(0.0, "start", None), (0.6, "response", 200)],
        [(0.0, (S,)), (0.6, (D, T))],
    ),
    (
        "IST non-2xx: Timer G doubles up to T2, Timer H times out",
        InviteServerTransaction,
        "INVITE",
        False,
        [(0.0, "respond", 100), (1.0, "respond", 486)],
        [
            (0.0, (S,)),
            (1.0, (S,)),
            (1.5, (S,)),
            (2.5, (S,)),
            (4.5, (S,)),
            (8.5, (S,)),
            (12.5, (S,)),
            (16.5, (S,)),
            (20.5, (S,)),
            (24.5, (S,)),
            (28.5, (S,)),
            (32.5, (S,)),
            (33.0, (TO, T)),
        ],
    ),
    (
        "IST non-2xx then ACK: Confirmed, Timer I",
        InviteServerTransaction,
        "INVITE",
        False,
        [(0.0, "respond", 486), (0.8, "request", "ACK"), (1.0, "request", "ACK")],
        [(0.0, (S,)), (0.5, (S,)), (0.8, ()), (1.0, ()), (5.8, (T,))],
    ),
    (
        "IST over TCP: no Timer G, ACK terminates at once (Timer I zero)",
        InviteServerTransaction,
        "INVITE",
        True,
        [(0.0, "respond", 486), (0.8, "request", "ACK")],
        [(0.0, (S,)), (0.8, (T,))],
    ),
    (
        "IST over TCP without ACK: Timer H",
        InviteServerTransaction,
        "INVITE",
        True,
        [(0.0, "respond", 486)],
        [(0.0, (S,)), (32.0, (TO, T))],
    ),
    (
        "IST 2xx: Accepted absorbs INVITEs, passes ACK, Timer L",
        InviteServerTransaction,
        "INVITE",
        False,
        [
            (0.0, "respond", 180),
            (0.1, "request", "INVITE"),
            (1.0, "respond", 200),
            (1.5, "request", "INVITE"),
            (2.0, "respond", 200),
            (2.1, "request", "ACK"),
        ],
        [(0.0, (S,)), (0.1, (S,)), (1.0, (S,)), (1.5, ()), (2.0, (S,)), (2.1, (DR,)), (33.0, (T,))],
    ),
    (
        "NIST: Trying absorbs, Proceeding/Completed resend, Timer J",
        NonInviteServerTransaction,
        "REGISTER",
        False,
        [
            (0.0, "request", "REGISTER"),
            (0.1, "respond", 100),
            (0.2, "request", "REGISTER"),
            (0.3, "respond", 200),
            (0.4, "request", "REGISTER"),
            (0.5, "respond", 404),
        ],
        [(0.0, ()), (0.1, (S,)), (0.2, (S,)), (0.3, (S,)), (0.4, (S,)), (0.5, ()), (32.3, (T,))],
    ),
    (
        "NIST over TCP: Timer J is zero",
        NonInviteServerTransaction,
        "OPTIONS",
        True,
        [(0.0, "respond", 200)],
        [(0.0, (S, T))],
    ),
]


@pytest.mark.parametrize(
    ("factory", "method", "reliable", "script", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in TIMER_TABLE],
)
def test_timer_table(
    factory: Callable[..., Transaction],
    method: str,
    reliable: bool,
    script: list[Event],
    expected: list[tuple[float, tuple[str, ...]]],
) -> None:
    txn = factory(request(method), reliable, 0.0)
    log = run(txn, script)
    assert [a for _, a in log] == [a for _, a in expected]
    assert [t for t, _ in log] == pytest.approx([t for t, _ in expected])
    assert txn.state is State.TERMINATED and txn.deadline is None


@pytest.mark.parametrize("row", TIMER_TABLE, ids=[r[0] for r in TIMER_TABLE])
def test_timer_table_scales_with_t1(row: Any) -> None:
    """Configured timers scale every interval: T1, T2, T4 and D all /10."""
    _, factory, method, reliable, script, expected = row
    fast = Timers(t1=0.05, t2=0.4, t4=0.5, d=3.2)
    txn = factory(request(method), reliable, 0.0, fast)
    scaled = [(t / 10, op, arg) for t, op, arg in script]
    log = run(txn, scaled)
    assert [a for _, a in log] == [a for _, a in expected]
    assert [t * 10 for t, _ in log] == pytest.approx([t for t, _ in expected])


def test_pending_timers_name_the_rfc_timers() -> None:
    txn = InviteClientTransaction(request(), False, 10.0)
    txn.start(10.0)
    assert txn.pending_timers == {"A": 10.5, "B": 42.0}
    txn.on_response(response(txn.request, 486), 11.0)
    assert txn.pending_timers == {"D": 11.0 + DEFAULT_TIMERS.d}
    ist = InviteServerTransaction(request(), False, 0.0)
    ist.respond(reply(ist.request, 486), 1.0)
    assert ist.pending_timers == {"G": 1.5, "H": 33.0}


# ---------------------------------------------------------------------------
# What is sent


def test_retransmissions_are_the_original_bytes() -> None:
    req = request("INVITE", extra_via=True)
    txn = InviteClientTransaction(req, False, 0.0)
    (first,) = txn.start(0.0)
    assert isinstance(first, Send)
    assert parse_message(first.data).to_bytes() == req.to_bytes()
    (again,) = txn.on_timer(0.5)
    assert again == first

    ist = InviteServerTransaction(req, False, 0.0)
    (sent,) = ist.respond(reply(req, 486), 0.0)
    assert ist.on_timer(0.5) == [sent]
    assert ist.on_request(req, 0.6) == [sent]


def test_late_wakeup_sends_once_and_keeps_the_schedule() -> None:
    txn = InviteClientTransaction(request(), False, 0.0)
    txn.start(0.0)
    actions = txn.on_timer(10.0)  # A was due at 0.5, 1.5, 3.5, 7.5
    assert names(actions) == (S,)
    assert txn.deadline == pytest.approx(15.5)
    assert names(txn.on_timer(100.0)) == (TO, T)  # B was due at 32 while we slept


def test_ack_for_non_2xx_follows_17_1_1_3() -> None:
    routes = ("<sip:p1.example.test;lr>", "<sip:p2.example.test;lr>")
    req = request("INVITE", routes=routes, extra_via=True, cseq=42)
    txn = InviteClientTransaction(req, False, 0.0)
    txn.start(0.0)
    resp = response(req, 486, to_tag="busy9")
    actions = txn.on_response(resp, 0.1)
    sends = [a for a in actions if isinstance(a, Send)]
    delivers = [a for a in actions if isinstance(a, Deliver)]
    assert len(sends) == 1 and len(delivers) == 1 and delivers[0].message is resp
    ack = parse_message(sends[0].data)
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == req.uri
    assert [v.raw for v in ack.vias] == [req.top_via.raw]  # only the top Via, same branch
    assert ack.get_all("route") == req.get_all("route")
    assert ack.get("from") == req.get("from")
    assert ack.to_tag == "busy9" and ack.to.uri == req.to.uri
    assert ack.call_id == req.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (42, "ACK")
    assert ack.body == b""
    # The retransmitted 486 is absorbed: same ACK again, nothing for the TU.
    assert txn.on_response(response(req, 486, to_tag="busy9"), 0.2) == sends


def test_cancel_request_follows_9_1() -> None:
    routes = ("<sip:p1.example.test;lr>",)
    req = request("INVITE", routes=routes, extra_via=True, cseq=7)
    txn = InviteClientTransaction(req, False, 0.0)
    txn.start(0.0)
    txn.on_response(response(req, 180), 0.1)
    cancel = txn.cancel_request()
    again = txn.cancel_request()
    assert cancel is not again  # callers may add a Reason header to theirs
    wire = parse_message(cancel.to_bytes())  # it survives the wire
    assert isinstance(wire, Request)
    cancel = wire
    assert cancel.method == "CANCEL" and cancel.uri == req.uri
    assert [v.raw for v in cancel.vias] == [req.top_via.raw]
    assert cancel.get_all("route") == req.get_all("route")
    assert cancel.get("from") == req.get("from") and cancel.get("to") == req.get("to")
    assert cancel.call_id == req.call_id
    assert (cancel.cseq.seq, cancel.cseq.method) == (7, "CANCEL")
    assert cancel.body == b"" and cancel.max_forwards == 70
    assert txn.deadline is None  # no guard asked for


def test_cancel_guard_times_out_a_silent_branch() -> None:
    req = request("INVITE")
    txn = InviteClientTransaction(req, False, 0.0)
    txn.start(0.0)
    txn.on_response(response(req, 180), 0.1)
    assert txn.deadline is None  # Proceeding waits for the callee forever...
    txn.cancel_request(5.0)
    assert txn.pending_timers == {"CANCEL": 37.0}  # ...unless cancelled (§9.1: 64*T1)
    assert names(txn.on_timer(37.0)) == (TO, T)


def test_cancel_guard_armed_in_calling_survives_the_1xx() -> None:
    req = request("INVITE")
    txn = InviteClientTransaction(req, True, 0.0)
    txn.start(0.0)
    txn.cancel_request(1.0)
    assert txn.deadline == 32.0  # Timer B still first
    txn.on_response(response(req, 180), 2.0)
    assert txn.deadline == 33.0
    assert names(txn.on_response(response(req, 487), 3.0)) == (S, D, T)


def test_server_invite_passes_ack_to_tu_only_in_accepted() -> None:
    req = request("INVITE")
    ack = request("ACK", cseq_method="ACK", to_tag="srv1")
    ist = InviteServerTransaction(req, False, 0.0)
    assert ist.on_request(ack, 0.0) == []  # ACK before any final: ignored
    ist.respond(reply(req, 200), 0.1)
    assert ist.on_request(ack, 0.2) == [DeliverRequest(ack)]
    assert ist.respond(reply(req, 486), 0.3) == []  # a late non-2xx is dropped
    assert ist.respond(reply(req, 180), 0.3) == []


def test_responses_after_final_are_discarded() -> None:
    nist = NonInviteServerTransaction(request("BYE"), False, 0.0)
    (first,) = nist.respond(reply(nist.request, 200), 0.0)
    assert nist.respond(reply(nist.request, 404), 0.1) == []
    assert nist.on_request(nist.request, 0.2) == [first]
    assert nist.last_status == 200


def test_terminated_transactions_ignore_everything() -> None:
    req = request("INVITE")
    txn = InviteClientTransaction(req, True, 0.0)
    txn.start(0.0)
    assert names(txn.on_response(response(req, 486), 0.1)) == (S, D, T)
    assert txn.on_response(response(req, 486), 0.2) == []
    assert txn.on_response(response(req, 200), 0.2) == []
    assert txn.on_timer(1e9) == []
    assert txn.on_transport_error(0.3) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: InviteClientTransaction(request(), False, 0.0),
        lambda: NonInviteClientTransaction(request("BYE"), False, 0.0),
        lambda: InviteServerTransaction(request(), False, 0.0),
        lambda: NonInviteServerTransaction(request("BYE"), False, 0.0),
    ],
)
def test_transport_error_terminates(make: Callable[[], Transaction]) -> None:
    txn = make()
    if isinstance(txn, InviteClientTransaction | NonInviteClientTransaction):
        txn.start(0.0)
    actions = txn.on_transport_error(0.1)
    assert actions == [TransportError(), Terminated()]
    assert txn.terminated and txn.deadline is None


def test_timeout_only_for_b_f_h_and_cancel_guard() -> None:
    """Timers D, I, J, K, L, M end a transaction quietly: no Timeout for the TU."""
    req = request("INVITE")
    quiet: list[list[Action]] = []
    ict = InviteClientTransaction(req, False, 0.0)
    ict.start(0.0)
    ict.on_response(response(req, 200), 0.1)
    quiet.append(ict.on_timer(100.0))
    nict = NonInviteClientTransaction(request("BYE"), False, 0.0)
    nict.start(0.0)
    nict.on_response(response(nict.request, 200), 0.1)
    quiet.append(nict.on_timer(100.0))
    for actions in quiet:
        assert actions == [Terminated()]
    assert Timeout() not in quiet[0]

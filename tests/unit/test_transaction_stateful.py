"""Hypothesis state machine: random interleavings of requests, responses, TU calls
and clock jumps never raise, keep the table consistent, and always end Terminated.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.sip.message import Request, Response
from gateway.sip.parser import build_response, parse_message
from gateway.sip.transaction import (
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
    Transaction,
    TransactionTable,
    TransportError,
)

STATUSES = st.sampled_from([100, 180, 183, 200, 202, 302, 401, 404, 486, 487, 500, 503, 603])


def make_request(method: str, to_tag: str | None = None) -> Request:
    to = "<sip:bob@example.test>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"{method} sip:bob@example.test SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz\r\n"
        "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKup\r\n"
        "Route: <sip:proxy.example.test;lr>\r\n"
        "From: <sip:alice@example.test>;tag=f\r\n"
        f"To: {to}\r\n"
        "Call-ID: fuzz@example.test\r\n"
        f"CSeq: 5 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(raw.encode())
    assert isinstance(msg, Request)
    return msg


def make_response(req: Request, status: int, tag: str = "t1") -> Response:
    msg = parse_message(build_response(req, status, "R", to_tag=tag).to_bytes())
    assert isinstance(msg, Response)
    return msg


class TransactionMachine(RuleBasedStateMachine):
    table: TransactionTable
    txn: Transaction
    now: float
    terminated_seen: int

    @initialize(
        kind=st.sampled_from(["ict", "nict", "ist", "nist"]),
        reliable=st.booleans(),
        start=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    )
    def setup(self, kind: str, reliable: bool, start: float) -> None:
        self.table = TransactionTable()
        self.now = start
        self.terminated_seen = 0
        self.kind = kind
        method = "INVITE" if kind in ("ict", "ist") else "BYE"
        req = make_request(method)
        if kind in ("ict", "nict"):
            txn, actions = self.table.new_client(req, reliable, start)
            self.txn = txn
            self.check(actions)
        else:
            self.txn = self.table.new_server(req, reliable, start)

    # -- helpers ------------------------------------------------------------------
    def check(self, actions: list[Action]) -> None:
        kinds = {Send, Deliver, DeliverRequest, Timeout, TransportError, Terminated}
        for i, action in enumerate(actions):
            assert type(action) in kinds
            if type(action) is Send:
                parse_message(action.data)  # every byte we emit is a valid SIP message
            if type(action) is Deliver:
                assert self.kind in ("ict", "nict")
            if type(action) is DeliverRequest:
                assert self.kind == "ist" and action.message.method == "ACK"
            if type(action) is Terminated:
                assert i == len(actions) - 1
                self.terminated_seen += 1
        assert self.terminated_seen <= 1
        self.table.update(self.txn)

    # -- rules ----------------------------------------------------------------------
    @rule(dt=st.floats(min_value=0, max_value=40, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt
        for txn, actions in self.table.expire(self.now):
            assert txn is self.txn
            self.check(actions)

    @precondition(lambda self: self.kind in ("ict", "nict"))
    @rule(status=STATUSES, tag=st.sampled_from(["t1", "t2"]))
    def peer_responds(self, status: int, tag: str) -> None:
        txn = self.txn
        assert isinstance(txn, InviteClientTransaction | NonInviteClientTransaction)
        self.check(txn.on_response(make_response(txn.request, status, tag), self.now))

    @precondition(lambda self: self.kind in ("ist", "nist"))
    @rule()
    def peer_retransmits(self) -> None:
        txn = self.txn
        assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
        self.check(txn.on_request(make_request(txn.request.method), self.now))

    @precondition(lambda self: self.kind == "ist")
    @rule()
    def peer_acks(self) -> None:
        txn = self.txn
        assert isinstance(txn, InviteServerTransaction)
        self.check(txn.on_request(make_request("ACK", to_tag="t1"), self.now))

    @precondition(lambda self: self.kind in ("ist", "nist"))
    @rule(status=STATUSES)
    def tu_responds(self, status: int) -> None:
        txn = self.txn
        assert isinstance(txn, InviteServerTransaction | NonInviteServerTransaction)
        self.check(txn.respond(build_response(txn.request, status, "R", to_tag="t1"), self.now))

    @precondition(lambda self: self.kind == "ict")
    @rule(guard=st.booleans())
    def tu_cancels(self, guard: bool) -> None:
        txn = self.txn
        assert isinstance(txn, InviteClientTransaction)
        cancel = txn.cancel_request(self.now if guard else None)
        assert cancel.method == "CANCEL"
        self.table.update(txn)

    @rule(data=st.data())
    def transport_fails(self, data: st.DataObject) -> None:
        if data.draw(st.integers(0, 9)) == 0:  # rare
            self.check(self.txn.on_transport_error(self.now))

    # -- invariants -----------------------------------------------------------------
    @invariant()
    def consistent(self) -> None:
        txn = self.txn
        if txn.terminated:
            assert self.terminated_seen == 1
            assert txn.deadline is None
            assert len(self.table) == 0
            return
        assert self.terminated_seen == 0
        assert len(self.table) == 1
        if txn.deadline is not None:
            assert txn.deadline > self.now  # due timers were run
            nd = self.table.next_deadline()
            assert nd is not None and nd <= txn.deadline  # the table never wakes late
        else:
            # Only the peer or the TU can move these on.
            assert (
                self.kind in ("ist", "nist") and txn.state in (State.TRYING, State.PROCEEDING)
            ) or (self.kind == "ict" and txn.state is State.PROCEEDING)

    def teardown(self) -> None:
        """Whatever happened, a TU that answers and a clock that runs end it."""
        if not hasattr(self, "txn"):
            return
        txn = self.txn
        if not txn.terminated:
            if isinstance(txn, InviteServerTransaction | NonInviteServerTransaction):
                self.check(
                    txn.respond(build_response(txn.request, 500, "R", to_tag="t1"), self.now)
                )
            elif isinstance(txn, InviteClientTransaction) and txn.state is State.PROCEEDING:
                self.check(txn.on_response(make_response(txn.request, 487), self.now))
        for _ in range(5):
            self.advance(40.0)
        assert txn.terminated and self.terminated_seen == 1 and len(self.table) == 0


TransactionMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=30, deadline=None
)
test_transaction_state_machine = TransactionMachine.TestCase

"""Transaction matching (RFC 3261 §17.1.3, §17.2.3, §9.2, RFC 2543 fallback) and the table's deadline heap."""

from __future__ import annotations

import random

import pytest

from gateway.sip.message import Request, Response
from gateway.sip.parser import build_response, parse_message
from gateway.sip.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Send,
    State,
    Terminated,
    Timers,
    Transaction,
    TransactionTable,
    client_key,
    server_key,
)


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKk1",
    sent_by: str = "192.0.2.1:5060",
    transport: str = "UDP",
    cseq: int = 1,
    call_id: str = "c1@example.test",
    from_tag: str = "f1",
    to_tag: str | None = None,
    ruri: str = "sip:bob@example.test",
) -> Request:
    branch_param = f";branch={branch}" if branch is not None else ""
    to = "<sip:bob@example.test>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by}{branch_param}\r\n"
        f"From: <sip:alice@example.test>;tag={from_tag}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(raw.encode())
    assert isinstance(msg, Request)
    return msg


def response_to(req: Request, status: int, to_tag: str = "uas1") -> Response:
    msg = parse_message(build_response(req, status, "X", to_tag=to_tag).to_bytes())
    assert isinstance(msg, Response)
    return msg


# ---------------------------------------------------------------------------
# server_key: RFC 3261 branches


def test_retransmission_and_ack_match_the_invite() -> None:
    invite = request("INVITE")
    assert server_key(request("INVITE")) == server_key(invite)
    ack = request("ACK", to_tag="uas1")  # ACK for a non-2xx: same branch
    assert server_key(ack) == server_key(invite)


def test_cancel_has_its_own_transaction_and_finds_its_invite() -> None:
    invite = request("INVITE")
    cancel = request("CANCEL")
    assert server_key(cancel) != server_key(invite)
    assert server_key(cancel, "INVITE") == server_key(invite)
    assert server_key(request("CANCEL", branch="z9hG4bKother"), "INVITE") != server_key(invite)


@pytest.mark.parametrize(
    "other",
    [
        {"branch": "z9hG4bKk2"},
        {"sent_by": "192.0.2.1:5070"},
        {"sent_by": "192.0.2.2:5060"},
    ],
)
def test_branch_sent_by_and_method_all_count(other: dict[str, str]) -> None:
    assert server_key(request("INVITE", **other)) != server_key(request("INVITE"))  # type: ignore[arg-type]


def test_method_counts_except_ack() -> None:
    assert server_key(request("BYE")) != server_key(request("INVITE"))
    assert server_key(request("OPTIONS")) != server_key(request("BYE"))


def test_sent_by_default_port_and_host_case() -> None:
    assert server_key(request(sent_by="Host.Example.TEST")) == server_key(
        request(sent_by="host.example.test:5060")
    )
    assert server_key(request(sent_by="host.example.test", transport="TLS")) == server_key(
        request(sent_by="host.example.test:5061", transport="TLS")
    )


# ---------------------------------------------------------------------------
# server_key: RFC 2543 fallback (no magic cookie)


@pytest.mark.parametrize("branch", [None, "1234abcd"])
def test_rfc2543_matching(branch: str | None) -> None:
    invite = request("INVITE", branch=branch)
    assert server_key(request("INVITE", branch=branch)) == server_key(invite)
    # The ACK carries the To tag of our response; it still finds the INVITE.
    assert server_key(request("ACK", branch=branch, to_tag="ours")) == server_key(invite)
    assert server_key(request("CANCEL", branch=branch), "INVITE") == server_key(invite)
    for change in (
        {"cseq": 2},
        {"call_id": "other"},
        {"from_tag": "f2"},
        {"ruri": "sip:carol@example.test"},
        {"sent_by": "192.0.2.9:5060"},
    ):
        assert server_key(request("INVITE", branch=branch, **change)) != server_key(invite), change


def test_rfc2543_and_rfc3261_never_collide() -> None:
    assert server_key(request(branch="z9hG4bKx")) != server_key(request(branch="x"))


# ---------------------------------------------------------------------------
# client_key


def test_client_key_matches_response_to_transaction() -> None:
    invite = request("INVITE")
    cancel = request("CANCEL")
    ict = InviteClientTransaction(invite, False, 0.0)
    cct = NonInviteClientTransaction(cancel, False, 0.0)
    assert client_key(response_to(invite, 180)) == ict.key
    assert client_key(response_to(cancel, 200)) == cct.key  # same branch, CSeq method tells
    assert ict.key != cct.key


# ---------------------------------------------------------------------------
# TransactionTable


def test_table_find_and_dispatch() -> None:
    table = TransactionTable()
    invite = request("INVITE")
    ist = table.new_server(invite, False, 0.0)
    assert isinstance(ist, InviteServerTransaction)
    assert table.find_server(request("INVITE")) is ist
    assert table.find_server(request("ACK", to_tag="x")) is ist
    assert table.find_server(request("CANCEL")) is None
    cancel_txn = table.new_server(request("CANCEL"), False, 0.0)
    assert isinstance(cancel_txn, NonInviteServerTransaction)
    assert table.find_server(request("CANCEL")) is cancel_txn
    assert table.find_cancelled(request("CANCEL")) is ist
    assert table.find_cancelled(request("CANCEL", branch="z9hG4bKnone")) is None

    out = request("INVITE", branch="z9hG4bKdown", sent_by="203.0.113.5:5060")
    ict, actions = table.new_client(out, False, 0.0)
    assert isinstance(ict, InviteClientTransaction)
    assert [type(a) for a in actions] == [Send]
    assert table.find_client(response_to(out, 180)) is ict
    assert table.find_client(response_to(request("INVITE", branch="z9hG4bKelse"), 180)) is None
    assert len(table) == 3


def test_table_expire_fires_and_removes() -> None:
    table = TransactionTable()
    req = request("OPTIONS", branch="z9hG4bKo")
    nict, _ = table.new_client(req, False, 0.0)
    assert table.next_deadline() == 0.5
    assert table.expire(0.49) == []
    fired = table.expire(0.5)
    assert [(txn, [type(a) for a in acts]) for txn, acts in fired] == [(nict, [Send])]
    assert table.next_deadline() == 1.5
    nict.on_response(response_to(req, 200), 1.0)  # final: E stops, K = 1.0 + T4
    table.update(nict)
    assert table.expire(1.5) == []  # the stale heap entry is skipped
    assert table.next_deadline() == 6.0
    (fired_k,) = table.expire(6.0)
    assert fired_k == (nict, [Terminated()])
    assert len(table) == 0 and table.next_deadline() is None
    assert table.find_client(response_to(req, 200)) is None


def test_table_update_moves_a_deadline_earlier() -> None:
    table = TransactionTable()
    req = request("BYE")
    nist = table.new_server(req, False, 0.0)
    assert table.next_deadline() is None  # waiting for the TU
    nist.respond(build_response(req, 200, "OK", to_tag="t"), 1.0)
    table.update(nist)
    assert table.next_deadline() == 33.0
    (fired,) = table.expire(40.0)
    assert fired == (nist, [Terminated()])
    assert table.find_server(req) is None


def test_table_update_after_immediate_termination_removes() -> None:
    table = TransactionTable()
    req = request("BYE", transport="TCP")
    nist = table.new_server(req, True, 0.0)
    actions = nist.respond(build_response(req, 200, "OK", to_tag="t"), 0.0)
    assert Terminated() in actions
    table.update(nist)
    assert len(table) == 0


def test_removed_transactions_never_fire() -> None:
    table = TransactionTable()
    txn, _ = table.new_client(request("OPTIONS"), False, 0.0)
    table.remove(txn)
    table.remove(txn)  # idempotent
    assert table.next_deadline() is None
    assert table.expire(100.0) == []


def test_table_timers_are_per_table() -> None:
    fast = TransactionTable(Timers(t1=0.01, t2=0.08, t4=0.1, d=0.64))
    txn, _ = fast.new_client(request("INVITE"), True, 0.0)
    assert txn.pending_timers == {"B": pytest.approx(0.64)}
    with pytest.raises(ValueError):
        Timers(t1=0.0)


def test_many_transactions_fire_in_deadline_order_until_empty() -> None:
    """2,000 mixed transactions with random answers: every timer fires exactly at its
    deadline, in order, and the table drains."""
    rng = random.Random(1234)
    table = TransactionTable()
    live: list[Transaction] = []
    for i in range(2000):
        start = rng.uniform(0, 5)
        reliable = rng.random() < 0.3
        kind = rng.randrange(4)
        branch = f"z9hG4bK{i}"
        txn: Transaction
        if kind < 2:
            req = request("INVITE" if kind == 0 else "REGISTER", branch=branch)
            client, _ = table.new_client(req, reliable, start)
            if rng.random() < 0.5:
                status = rng.choice([180, 200, 486] if kind == 0 else [100, 200, 401])
                client.on_response(response_to(req, status), start + 0.1)
            txn = client
        else:
            req = request("INVITE" if kind == 2 else "MESSAGE", branch=branch)
            server = table.new_server(req, reliable, start)
            status = rng.choice([200, 486]) if kind == 2 else 200
            server.respond(build_response(req, status, "X", to_tag="t"), start)
            txn = server
        table.update(txn)
        live.append(txn)
    now = 0.0
    rounds = 0
    while (deadline := table.next_deadline()) is not None:
        assert deadline >= now
        now = deadline
        for fired, actions in table.expire(now):
            assert actions
            assert fired.deadline is None or fired.deadline > now
        rounds += 1
    assert rounds > 0
    # What is left waits on a peer (client INVITE in Proceeding): nothing else.
    waiting = [t for t in live if not t.terminated]
    assert all(
        isinstance(t, InviteClientTransaction) and t.state is State.PROCEEDING for t in waiting
    )
    assert len(table) == len(waiting)


def test_table_checks_rfc2543_to_tags() -> None:
    """RFC 3261 §17.2.3: an RFC 2543 ACK matches only with the To tag of our response."""
    table = TransactionTable()
    invite = request("INVITE", branch=None)
    ist = table.new_server(invite, False, 0.0)
    assert table.find_server(request("INVITE", branch=None)) is ist
    assert table.find_server(request("ACK", branch=None, to_tag="srv")) is None  # nothing sent yet
    ist.respond(build_response(invite, 486, "Busy Here", to_tag="srv"), 0.0)
    table.update(ist)
    assert table.find_server(request("ACK", branch=None, to_tag="srv")) is ist
    assert table.find_server(request("ACK", branch=None, to_tag="other")) is None
    assert table.find_server(request("INVITE", branch=None, to_tag="other")) is None
    assert table.find_cancelled(request("CANCEL", branch=None)) is ist
    assert table.find_cancelled(request("CANCEL", branch=None, to_tag="x")) is None

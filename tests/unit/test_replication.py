"""Binding replication between the main process and registrar workers (pure parts)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

from gateway.location import Binding
from gateway.regworkers import worker_for
from gateway.replication import (
    BINDING,
    SIP,
    Channel,
    ReplicatedLocation,
    decode_sip,
    encode_sip,
    unpack_binding,
)
from gateway.transport import Peer

PEER = Peer("udp", "127.0.0.1", 5062)


def binding(aor: str, contact: str, expires_at: float, registered_at: float = 0.0) -> Binding:
    return Binding(aor=aor, contact=contact, contact_raw=f"<{contact}>", expires_at=expires_at, call_id="c1",
                   cseq=1, peer=PEER, registered_at=registered_at)


class Clock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


def test_a_copy_reports_its_changes_with_times_relative_to_its_own_clock() -> None:
    ops: list[Any] = []
    here = ReplicatedLocation(Clock(1000.0).now, ops.append)
    here.put(binding("alice", "sip:alice@10.0.0.1", expires_at=1060.0, registered_at=1000.0))
    here.remove("alice", "sip:alice@10.0.0.1")
    here.put(binding("bob", "sip:bob@10.0.0.2", expires_at=1030.0))
    here.remove_all("bob")
    here.remove_all("nobody")  # nothing removed: nothing to report
    kinds = [op[0] for op in ops]
    assert kinds == ["put", "remove", "put", "remove_all"]
    sent = unpack_binding(pickle.loads(pickle.dumps(ops[0]))[1], 0.0)  # as the other end reads it at its 0
    assert sent.expires_at == 60.0 and sent.registered_at == 0.0
    assert sent == replace(binding("alice", "sip:alice@10.0.0.1", expires_at=60.0), registered_at=0.0)
    assert here.lookup("alice", 1000.0) == []  # the local copy changed as well


def test_another_copy_applies_operations_on_its_own_clock_without_reporting_them() -> None:
    ops: list[Any] = []
    main_ops: list[Any] = []
    worker = ReplicatedLocation(Clock(1000.0).now, ops.append)
    main_clock = Clock(5.0)  # another process: another origin for protocol time
    main = ReplicatedLocation(main_clock.now, main_ops.append)
    worker.put(binding("alice", "sip:alice@10.0.0.1", expires_at=1060.0))
    main.apply(pickle.loads(pickle.dumps(ops[0])), origin="worker-1")
    [copy] = main.lookup("alice", 5.0)
    assert copy.expires_at == 65.0 and copy.registrar == "worker-1"
    assert main.lookup("alice", 65.0) == []  # expires at the same moment in both processes
    assert main_ops == []  # applied, not echoed back
    worker.remove_all("alice")
    main.apply(ops[-1])
    assert main.lookup("alice", 6.0) == []



def test_bindings_share_their_user_agent_and_host_strings_also_when_replicated() -> None:
    """LocationService.put points every binding at one shared User-Agent and host string (issue #6:
    memory per binding), for bindings made here and for copies that came over the channel."""
    ops: list[Any] = []
    worker = ReplicatedLocation(Clock(1000.0).now, ops.append)
    main = ReplicatedLocation(Clock(5.0).now, [].append)
    for user, port in (("alice", 5062), ("bob", 5064)):
        b = binding(user, f"sip:{user}@10.0.0.1", expires_at=1060.0)
        b.user_agent = "".join(["Yealink ", "SIP-T54W"])  # a fresh string each time, as parsed
        b.peer = Peer("udp", "".join(["127.0.0.", "1"]), port)
        worker.put(b)
        main.apply(pickle.loads(pickle.dumps(ops[-1])), origin="worker-1")
    for copy in (worker, main):
        alice, bob = copy.lookup("alice", 0.0) + copy.lookup("bob", 0.0)
        assert alice.user_agent == "Yealink SIP-T54W" and alice.user_agent is bob.user_agent
        assert alice.peer.host == "127.0.0.1" and alice.peer.host is bob.peer.host
        assert (alice.peer.port, bob.peer.port) == (5062, 5064)

def test_register_affinity_follows_the_call_id_whatever_else_differs() -> None:
    one = b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nCall-ID: abc@host\r\nCSeq: 1 REGISTER\r\n\r\n"
    two = b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK2\r\ni:  abc@host\r\nCSeq: 2 REGISTER\r\n\r\n"
    assert worker_for(one, 4) == worker_for(two, 4) is not None  # compact form, other spacing
    for spelling in (b"call-id: ", b"Call-ID :", b"CALL-ID:\t", b"Call-ID:   "):  # the slow path's spellings
        assert worker_for(one.replace(b"Call-ID: ", spelling), 4) == worker_for(one, 4)
    assert worker_for(one.replace(b"abc@host\r\n", b"abc@host \r\n"), 4) == worker_for(one, 4)
    assert worker_for(b"REGISTER sip:x SIP/2.0\r\nCSeq: 1 REGISTER\r\n\r\n", 4) is None
    spread = {worker_for(f"X\r\nCall-ID: {n}@h\r\n".encode(), 3) for n in range(100)}
    assert spread == {0, 1, 2}


class _Transport:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False


def test_frames_survive_any_split_of_the_stream() -> None:
    out = _Transport()
    sender = Channel(lambda k, p: None)
    sender.connection_made(out)  # type: ignore[arg-type]
    message = b"REGISTER sip:x SIP/2.0\r\n\r\n"
    sender.send(SIP, encode_sip(message, Peer("tcp", "::1", 5060, 7)))
    sender.send_obj(BINDING, ("remove_all", "alice"))
    got: list[tuple[bytes, bytes]] = []
    receiver = Channel(lambda k, p: got.append((k, p)))
    stream = bytes(out.data)
    for i in range(0, len(stream), 3):  # three bytes at a time
        receiver.data_received(stream[i:i + 3])
    assert [k for k, _ in got] == [SIP, BINDING]
    assert decode_sip(got[0][1]) == (message, Peer("tcp", "::1", 5060, 7))
    assert pickle.loads(got[1][1]) == ("remove_all", "alice")

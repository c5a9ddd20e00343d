"""Registrar behaviour through the real SipCore (ManualClock, captured sends)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.registrar import R12_REASON
from gateway.sip.digest import Algorithm, parse_challenge
from gateway.sip.message import Response
from gateway.transport import Peer
from tests.gwharness import DOMAIN, Gateway, Phone, answer_challenge, register, request


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return Gateway(tmp_path)


def test_register_with_digest_binds_the_contact(gw: Gateway) -> None:
    alice = gw.phone("1001")
    final = register(gw, alice, expires=600)
    assert final.status == 200
    contacts = final.values("contact")
    assert len(contacts) == 1 and alice.contact in contacts[0] and "expires=600" in contacts[0]
    bindings = gw.location.lookup(alice.username, gw.clock.now())
    assert [b.contact for b in bindings] == [alice.contact]
    assert bindings[0].peer == alice.peer


def test_challenge_offers_every_configured_algorithm_in_order(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, algorithms=(Algorithm.SHA256, Algorithm.MD5))
    alice = gw.phone("1001")
    gw.inject(request("REGISTER", f"sip:{DOMAIN}", alice), alice.peer)
    resp = gw.one(alice.peer)
    assert isinstance(resp, Response) and resp.status == 401
    algs = [parse_challenge(v).algorithm for v in resp.get_all("www-authenticate")]
    assert algs == [Algorithm.SHA256, Algorithm.MD5]


def test_sha256_credentials_register(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, algorithms=(Algorithm.SHA256,))
    alice = gw.phone("1001")
    assert register(gw, alice).status == 200


def test_unknown_user_and_wrong_password_get_the_same_answer(gw: Gateway) -> None:
    alice = gw.phone("1001")
    wrong = Phone(alice.username, "not-the-password", "1001", alice.device_id, Peer("udp", "127.0.0.1", 41000))
    ghost = Phone("nobody-here", "whatever", "9999", 0, Peer("udp", "127.0.0.1", 41002))
    answers = [register(gw, p) for p in (wrong, ghost)]
    assert [(r.status, r.reason) for r in answers] == [(403, "Forbidden"), (403, "Forbidden")]
    assert gw.location.count() == 0


def test_non_activated_device_is_refused_with_r12(gw: Gateway) -> None:
    bob = gw.phone("1002", activate=False)
    final = register(gw, bob)
    assert (final.status, final.reason) == (403, R12_REASON)
    assert gw.location.count() == 0


def test_interval_too_brief_names_the_minimum(gw: Gateway) -> None:
    alice = gw.phone("1001")
    final = register(gw, alice, expires=10)
    assert final.status == 423
    assert final.get("min-expires") == "60"


def test_binding_expires_on_the_clock(gw: Gateway) -> None:
    alice = gw.phone("1001")
    assert register(gw, alice, expires=120).status == 200
    gw.clock.advance(119)
    assert gw.location.lookup(alice.username, gw.clock.now())
    gw.clock.advance(2)
    assert gw.location.lookup(alice.username, gw.clock.now()) == []


def test_several_contacts_refresh_and_star_removal(gw: Gateway) -> None:
    alice = gw.phone("1001")
    assert register(gw, alice).status == 200
    second = '<sip:alice-desk@127.0.0.1:45000>;+sip.instance="<urn:uuid:0f0e-aa>";expires=300'
    final = register(gw, alice, contact=second)
    assert final.status == 200
    assert len(final.values("contact")) == 2
    binding = next(b for b in gw.location.lookup(alice.username, 0) if "alice-desk" in b.contact)
    assert binding.instance == "<urn:uuid:0f0e-aa>"
    # un-register everything: Contact: * with Expires: 0
    final = register(gw, alice, contact="*", expires=0)
    assert final.status == 200
    assert gw.location.lookup(alice.username, gw.clock.now()) == []


def test_star_without_expires_zero_is_a_bad_request(gw: Gateway) -> None:
    alice = gw.phone("1001")
    final = register(gw, alice, contact="*", expires=60)
    assert final.status == 400 and "Expires: 0" in final.reason


def test_expires_zero_on_one_contact_removes_it(gw: Gateway) -> None:
    alice = gw.phone("1001")
    assert register(gw, alice).status == 200
    final = register(gw, alice, expires=0)
    assert final.status == 200 and final.values("contact") == []


def test_replayed_nonce_count_is_refused(gw: Gateway) -> None:
    alice = gw.phone("1001")
    uri = f"sip:{DOMAIN}"
    gw.inject(request("REGISTER", uri, alice, call_id="r1", cseq=1), alice.peer)
    challenge = gw.one(alice.peer)
    assert isinstance(challenge, Response)
    auth = answer_challenge(challenge, alice, "REGISTER", uri, "www-authenticate")
    gw.inject(request("REGISTER", uri, alice, call_id="r1", cseq=2, extra=[f"Authorization: {auth}"]),
              alice.peer)
    first = gw.one(alice.peer)
    assert isinstance(first, Response) and first.status == 200
    # same credentials (same nonce and nc) in a new transaction: a replay
    gw.inject(request("REGISTER", uri, alice, call_id="r1", cseq=3, extra=[f"Authorization: {auth}"]),
              alice.peer)
    replay = gw.one(alice.peer)
    assert isinstance(replay, Response) and replay.status == 401  # not admitted: challenged afresh
    assert parse_challenge(replay.get("www-authenticate") or "").stale
    assert len(gw.location.lookup(alice.username, gw.clock.now())) == 1


def test_expired_nonce_gets_stale_true(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, nonce_lifetime=30)
    alice = gw.phone("1001")
    uri = f"sip:{DOMAIN}"
    gw.inject(request("REGISTER", uri, alice, call_id="s1", cseq=1), alice.peer)
    challenge = gw.one(alice.peer)
    assert isinstance(challenge, Response)
    auth = answer_challenge(challenge, alice, "REGISTER", uri, "www-authenticate")
    gw.clock.advance(31)
    gw.inject(request("REGISTER", uri, alice, call_id="s1", cseq=2, extra=[f"Authorization: {auth}"]),
              alice.peer)
    again = gw.one(alice.peer)
    assert isinstance(again, Response) and again.status == 401
    assert parse_challenge(again.get("www-authenticate") or "").stale


def test_a_retransmitted_unauthenticated_register_is_challenged_again_statelessly(gw: Gateway) -> None:
    """The 401 keeps no transaction (like Kamailio's sl): a retransmission gets a fresh challenge
    with the same To tag, and an answer to either nonce registers."""
    alice = gw.phone("1001")
    data = request("REGISTER", f"sip:{DOMAIN}", alice, branch="z9hG4bKretx1", call_id="x", cseq=1)
    gw.inject(data, alice.peer)
    gw.inject(data, alice.peer)
    first, second = gw.take(alice.peer)
    assert isinstance(first, Response) and isinstance(second, Response)
    assert first.status == second.status == 401
    assert first.to_tag == second.to_tag is not None
    assert len(gw.core.txns) == 0  # nothing held for a challenge
    auth = answer_challenge(first, alice, "REGISTER", f"sip:{DOMAIN}", "www-authenticate")
    data = request("REGISTER", f"sip:{DOMAIN}", alice, call_id="x", cseq=2,
                   extra=[f"Authorization: {auth}"])
    gw.inject(data, alice.peer)
    assert gw.one(alice.peer).status == 200  # type: ignore[union-attr]


def test_a_retransmitted_authenticated_register_gets_the_same_answer_without_reprocessing(gw: Gateway) -> None:
    """The REGISTER that changes bindings runs in a transaction: its retransmission is answered from
    it (re-running it would fail the CSeq order check of RFC 3261 §10.3 step 7)."""
    alice = gw.phone("1001")
    data = request("REGISTER", f"sip:{DOMAIN}", alice, call_id="y", cseq=1)
    gw.inject(data, alice.peer)
    challenge = gw.one(alice.peer)
    assert isinstance(challenge, Response)
    auth = answer_challenge(challenge, alice, "REGISTER", f"sip:{DOMAIN}", "www-authenticate")
    data = request("REGISTER", f"sip:{DOMAIN}", alice, branch="z9hG4bKretx2", call_id="y", cseq=2,
                   extra=[f"Authorization: {auth}"])
    gw.inject(data, alice.peer)
    gw.inject(data, alice.peer)
    first, second = gw.take(alice.peer)
    assert isinstance(first, Response) and isinstance(second, Response)
    assert first.status == second.status == 200
    assert first.to_bytes() == second.to_bytes()  # resent from the transaction, not redone


def test_deactivation_drops_bindings_through_the_change_bus(gw: Gateway) -> None:
    from provisioning.events import Change

    alice = gw.phone("1001")
    assert register(gw, alice).status == 200
    gw.bus.subscribe(lambda change: gw.registrar.on_change(change, gw.directory.snapshot, gw.clock.now()))
    from sqlmodel import Session

    from provisioning.models import Device

    with Session(gw.engine) as s:
        device = s.get(Device, alice.device_id)
        assert device is not None
        device.state = "suspended"
        s.add(device)
        s.commit()
    gw.bus.publish(Change("device.suspended", alice.device_id, gw.account_id))
    assert gw.location.lookup(alice.username, gw.clock.now()) == []


def test_r4_concurrent_licence_admits_one_registered_user_at_a_time(gw: Gateway) -> None:
    from sqlmodel import Session

    from provisioning.schemas import LicenceCreate
    from provisioning.services.licences import create_licence

    ann, ben = gw.phone("1001"), gw.phone("1002")
    snapshot = gw.directory.snapshot
    users = [snapshot.lines[p.username].user_id for p in (ann, ben)]
    with Session(gw.engine) as s:
        create_licence(gw._env(s), gw.account_id, LicenceCreate(kind="concurrent", name="shared desk",
                                                                user_ids=users))
    assert gw.directory.snapshot.lines[ann.username].licence_kind == "concurrent"
    assert register(gw, ann).status == 200
    second = register(gw, ben)
    assert (second.status, second.reason) == (403, "Concurrent licence in use by another user (R4)")
    assert register(gw, ann, expires=0).status == 200  # the first user logs out…
    assert register(gw, ben).status == 200  # …and the licence is free for the next


def test_r2_rotated_credentials_end_the_old_registration_at_once(gw: Gateway) -> None:
    from sqlmodel import Session

    from provisioning.services import rotate_line_password

    alice = gw.phone("1001")
    assert register(gw, alice).status == 200
    gw.bus.subscribe(lambda change: gw.registrar.on_change(change, gw.directory.snapshot, gw.clock.now()))
    line_id = gw.directory.snapshot.lines[alice.username].line_id
    with Session(gw.engine) as s:
        _, new_password = rotate_line_password(gw._env(s), line_id)
    assert gw.location.lookup(alice.username, gw.clock.now()) == []  # dropped, not left to expire
    assert register(gw, alice).status == 403  # the old password no longer works
    alice.password = new_password
    assert register(gw, alice).status == 200


def test_credentials_for_another_uri_are_a_bad_request(gw: Gateway) -> None:
    alice = gw.phone("1001")
    uri = f"sip:{DOMAIN}"
    gw.inject(request("REGISTER", uri, alice, call_id="u1", cseq=1), alice.peer)
    challenge = gw.one(alice.peer)
    assert isinstance(challenge, Response)
    auth = answer_challenge(challenge, alice, "REGISTER", "sip:elsewhere.example", "www-authenticate")
    gw.inject(request("REGISTER", uri, alice, call_id="u1", cseq=2, extra=[f"Authorization: {auth}"]),
              alice.peer)
    final = gw.one(alice.peer)
    assert isinstance(final, Response) and final.status == 400 and "Request-URI" in final.reason


def test_housekeeping_forgets_the_counts_of_expired_nonces(tmp_path: Path) -> None:
    """The replay guard's entry for a registration's nonce goes once the nonce has expired,
    on the periodic sweep, not only when the table fills (issue #6: memory per binding)."""
    gw = Gateway(tmp_path, nonce_lifetime=30)
    alice = gw.phone("1001")
    assert register(gw, alice).status == 200
    assert len(gw.auth.nonces) == 1
    gw.clock.advance(31 + gw.core.limits.housekeeping_real_seconds)
    assert len(gw.auth.nonces) == 0
    assert len(gw.location.lookup(alice.username, gw.clock.now())) == 1  # the binding stays


def test_r13_fingerprint_is_handed_over_once_until_the_snapshot_shows_it(gw: Gateway) -> None:
    """A phone re-registering (or a 16-line phone registering each line) before the R13 writer
    and the directory have caught up hands its network fingerprint over once, not per REGISTER;
    it is handed over again after R13_REPORT_RETRY, and at once from another network."""
    from datetime import UTC, datetime

    from e911.moves import fingerprint
    from gateway.registrar import R13_REPORT_RETRY
    from gateway.transport import Peer
    from provisioning.e911_store import E911Store

    reported: list[dict[str, object]] = []
    gw.registrar.on_fingerprint = reported.append
    alice = gw.phone("1001")
    for _ in range(3):
        assert register(gw, alice).status == 200
    home = fingerprint("127.0.0.1", "127.0.0.1").as_dict()
    assert [(r["device_id"], r["fingerprint"]) for r in reported] == [(alice.device_id, home)]

    gw.clock.advance(R13_REPORT_RETRY + 1)  # still not in the snapshot: a record lost on the way is retried
    assert register(gw, alice).status == 200
    assert len(reported) == 2

    store = E911Store(gw.engine, bus=gw.bus)  # the writer records it and the directory follows
    store.record_registrations([{**reported[-1], "at": datetime.now(UTC)}])
    assert gw.directory.snapshot.devices[alice.device_id].last_fingerprint == fingerprint("127.0.0.1", "127.0.0.1")
    gw.clock.advance(R13_REPORT_RETRY + 1)
    assert register(gw, alice).status == 200
    assert len(reported) == 2  # same network as recorded: nothing to hand over

    alice.peer = Peer("udp", "127.0.0.9", alice.peer.port + 1000)  # moved: same /24, another Contact host
    assert register(gw, alice).status == 200
    assert len(reported) == 3 and reported[-1]["fingerprint"] != home

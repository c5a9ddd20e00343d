"""Server nonces: stateless verification across workers, expiry, replay guard, bounded memory.

The clock is a plain float passed to every call, as in the gateway.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.digest import (
    Algorithm,
    NonceManager,
    NonceState,
    build_challenge,
    build_credentials,
    ha1,
    parse_challenge,
    parse_credentials,
    verify,
)

SECRET = b"0123456789abcdef0123456789abcdef"
LIFETIME = 30.0


def test_lifetime_boundaries() -> None:
    nm = NonceManager(SECRET, LIFETIME)
    t0 = 1000.0
    nonce = nm.issue(t0)
    assert nm.check(nonce, t0) is NonceState.VALID
    assert nm.check(nonce, t0 + LIFETIME) is NonceState.VALID
    assert nm.check(nonce, t0 + LIFETIME + 0.001) is NonceState.STALE
    assert nm.check(nonce, t0 + 10 * LIFETIME) is NonceState.STALE


def test_any_worker_with_the_secret_verifies() -> None:
    a = NonceManager(SECRET, LIFETIME)
    b = NonceManager(SECRET, LIFETIME)
    other = NonceManager(b"another secret", LIFETIME)
    nonce = a.issue(5.0)
    assert b.check(nonce, 6.0) is NonceState.VALID
    assert other.check(nonce, 6.0) is NonceState.INVALID


def test_nonces_are_unique_and_quotable() -> None:
    nm = NonceManager(SECRET, LIFETIME)
    nonces = {nm.issue(1.0) for _ in range(200)}
    assert len(nonces) == 200
    for nonce in nonces:
        assert parse_challenge(build_challenge("r", nonce)).nonce == nonce


def test_tampering_is_invalid() -> None:
    nm = NonceManager(SECRET, LIFETIME)
    nonce = nm.issue(100.0)
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    for i in range(len(raw)):
        forged = bytearray(raw)
        forged[i] ^= 0x01
        text = base64.urlsafe_b64encode(bytes(forged)).decode()
        assert nm.check(text, 100.0) is NonceState.INVALID, i


def test_future_nonce_beyond_skew_is_invalid() -> None:
    nm = NonceManager(SECRET, LIFETIME, max_skew=2.0)
    nonce = nm.issue(100.0)
    assert nm.check(nonce, 98.5) is NonceState.VALID
    assert nm.check(nonce, 97.0) is NonceState.INVALID


@given(st.text(max_size=80))
def test_garbage_is_invalid_never_an_exception(text: str) -> None:
    nm = NonceManager(SECRET, LIFETIME)
    assert nm.check(text, 0.0) is NonceState.INVALID
    assert nm.check_nc(text, 1, 0.0) is False
    assert len(nm) == 0


def test_nonce_count_must_increase() -> None:
    nm = NonceManager(SECRET, LIFETIME)
    nonce = nm.issue(0.0)
    assert nm.check_nc(nonce, 1, 1.0)
    assert not nm.check_nc(nonce, 1, 1.5)  # replay
    assert nm.check_nc(nonce, 2, 2.0)  # linphone re-uses the nonce with nc=2
    assert nm.check_nc(nonce, 5, 2.0)  # gaps are allowed
    assert not nm.check_nc(nonce, 4, 2.0)  # lower is a replay
    assert not nm.check_nc(nonce, 0, 2.0)
    other = nm.issue(0.0)
    assert nm.check_nc(other, 1, 2.0)  # counts are per nonce


def test_nonce_count_refused_once_expired_and_entry_dropped() -> None:
    nm = NonceManager(SECRET, LIFETIME)
    nonce = nm.issue(0.0)
    assert nm.check_nc(nonce, 1, 0.0)
    assert not nm.check_nc(nonce, 2, LIFETIME + 1)
    assert len(nm) == 0
    fresh = nm.issue(LIFETIME + 1)
    assert not nm.check_nc(nm.issue(0.0), 1, LIFETIME + 1)  # already stale on first use
    assert nm.check_nc(fresh, 1, LIFETIME + 1)


def test_table_is_bounded_and_eviction_never_admits_a_replay() -> None:
    cap = 16
    nm = NonceManager(SECRET, LIFETIME, max_entries=cap)
    used: list[str] = []
    for i in range(200):
        now = i * 0.01  # all still valid: nothing expires, eviction must kick in
        nonce = nm.issue(now)
        assert nm.check_nc(nonce, 1, now)
        used.append(nonce)
        assert len(nm) <= cap
    now = 2.0
    for nonce in used:
        # Either remembered (so nc=1 is a replay) or evicted (refused outright).
        assert not nm.check_nc(nonce, 1, now)
    assert nm.check_nc(nm.issue(now), 1, now)


def test_expired_entries_are_purged_before_evicting() -> None:
    cap = 8
    nm = NonceManager(SECRET, LIFETIME, max_entries=cap)
    old = [nm.issue(0.0) for _ in range(cap)]
    for nonce in old:
        assert nm.check_nc(nonce, 1, 0.0)
    later = LIFETIME + 5
    # The table is full of expired nonces: a new one makes room by purging them,
    # so nonces issued just before it (but unused yet) stay acceptable.
    early = nm.issue(later - 1)
    assert nm.check_nc(nm.issue(later), 1, later)
    assert len(nm) == 1
    assert nm.check_nc(early, 1, later)


def test_sweep_forgets_expired_counts_without_letting_a_replay_through() -> None:
    """An idle registrar does not keep a count per nonce until the table fills (issue #6)."""
    nm = NonceManager(SECRET, LIFETIME)
    old = [nm.issue(1000.0 + i) for i in range(5)]
    fresh = nm.issue(1020.0)
    for k, nonce in enumerate(old):
        assert nm.check_nc(nonce, 1, 1020.0 + k * 0.001)
    assert nm.check_nc(fresh, 1, 1020.0)
    assert len(nm) == 6
    assert nm.sweep(1020.0) == 0  # all still valid
    assert nm.sweep(1000.0 + LIFETIME + 2.5) == 3  # issued at 1000, 1001, 1002
    assert len(nm) == 3
    assert nm.check(old[0], 1000.0 + LIFETIME + 2.5) is NonceState.STALE
    assert not nm.check_nc(old[0], 2, 1000.0 + LIFETIME + 2.5)  # expired: refused, not re-admitted
    assert not nm.check_nc(old[3], 1, 1000.0 + LIFETIME + 2.5)  # still live: a replay stays a replay
    assert nm.sweep(1020.0 + LIFETIME + 1) == 3
    assert len(nm) == 0


@pytest.mark.parametrize("alg", list(Algorithm))
def test_registrar_flow(alg: Algorithm) -> None:
    """Challenge -> answer -> verify -> nc guard, the way the registrar chains them."""
    nm = NonceManager(SECRET, LIFETIME)
    now = 50.0
    challenge = parse_challenge(build_challenge("example.test", nm.issue(now), algorithm=alg))
    key = ha1(alg, "alice", "example.test", "secret")
    for nc in (1, 2, 3):
        creds = parse_credentials(
            build_credentials(
                challenge, "alice", "secret", "REGISTER", "sip:example.test", cnonce="abc", nc=nc
            )
        )
        assert nm.check(creds.nonce, now) is NonceState.VALID
        assert verify(creds, key, "REGISTER")
        assert nm.check_nc(creds.nonce, creds.nc, now)
        assert not nm.check_nc(creds.nonce, creds.nc, now)
    assert nm.check(challenge.nonce, now + LIFETIME + 1) is NonceState.STALE


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        NonceManager(b"", LIFETIME)
    with pytest.raises(ValueError):
        NonceManager(SECRET, 0)
    with pytest.raises(ValueError):
        NonceManager(SECRET, LIFETIME, max_entries=0)

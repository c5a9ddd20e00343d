"""Real pjsua2 phones through a real `voiplab serve`: digest REGISTER, a call, its CDR.

The caller is the in-process phone, the callee a second pjsua2 in a subprocess (one Endpoint per
process). Durations are compared with what the phones themselves measured, with a wide tolerance:
this checks that the CDR holds the real duration, not the gateway's speed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.peers.api import (
    ProvisionedLine,
    VoiplabApi,
    call_ids,
    cdr_summary,
    registered_usernames,
    registration_transports,
)
from tests.peers.gateway import GatewayProcess
from tests.peers.ports import ipv6_loopback_available

pytestmark = pytest.mark.peers

REG_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
HOLD_SECONDS = 2.0
# CDR duration vs the caller's own CONFIRMED→DISCONNECTED measurement
DURATION_TOLERANCE = 1.0


def _poll(fetch: Callable[[], Any], ok: Callable[[Any], bool], timeout: float) -> Any:
    """Fetch until `ok(value)` or timeout; returns the last value either way."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = fetch()
    return value


def _algorithm_of(authorization: str) -> str:
    m = re.search(r"algorithm\s*=\s*\"?([A-Za-z0-9-]+)", authorization)
    return m.group(1).upper() if m else "MD5"  # RFC 2617: absent means MD5


def test_pjsua2_call_through_gateway_gives_answered_cdr(
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    pj_phone: Any,
    phone_process: Callable[..., Any],
) -> None:
    alice, bob = line(), line()

    callee = phone_process(bob.sip_account(gateway.sip_address), name="bob", answer="200")
    reg = callee.expect(REG_TIMEOUT, event="reg")
    assert (reg["code"], reg["reason"]) == (200, "OK"), f"callee REGISTER: {reg}"

    pj_phone.add_account(alice.sip_account(gateway.sip_address))
    reg = pj_phone.wait_event(REG_TIMEOUT, event="reg")
    assert reg is not None, "caller: no final answer to REGISTER"
    assert reg["code"] == 200, f"caller REGISTER: {reg}"
    assert pj_phone.sent_authorizations(), "REGISTER succeeded without digest credentials"

    regs = _poll(
        lambda: api.registrations(account_id),
        lambda rows: {alice.sip_username, bob.sip_username} <= registered_usernames(rows),
        3.0,
    )
    assert {alice.sip_username, bob.sip_username} <= registered_usernames(regs), regs

    call = pj_phone.call(bob.uri())
    confirmed = pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="CONFIRMED")
    assert confirmed is not None, "call never confirmed"
    incoming = callee.expect(2.0, event="incoming")
    assert incoming["sip_call_id"] == confirmed["sip_call_id"], "callee got another call"

    live = _poll(
        lambda: api.calls(account_id),
        lambda rows: confirmed["sip_call_id"] in call_ids(rows),
        3.0,
    )
    assert confirmed["sip_call_id"] in call_ids(live), f"GET /calls during the call: {live}"
    regs = api.registrations(account_id)
    assert {alice.sip_username, bob.sip_username} <= registered_usernames(regs), (
        f"GET /registrations during the call: {regs}"
    )

    pj_phone.run_until(lambda: False, HOLD_SECONDS)
    pj_phone.hangup(call)
    ended = pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    assert ended is not None, "BYE not answered"
    callee_end = callee.expect(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    assert callee_end["sip_call_id"] == confirmed["sip_call_id"]

    cdrs = _poll(lambda: api.cdrs(account_id), lambda rows: len(rows) >= 1, 5.0)
    assert len(cdrs) == 1, f"expected one call record, got {cdrs}"
    record = cdr_summary(cdrs[0])
    assert record["call_id"] == confirmed["sip_call_id"], cdrs
    assert record["disposition"] == "answered", cdrs
    assert record["answered"] and record["ended"], cdrs
    measured = float(ended["duration"])
    assert measured >= HOLD_SECONDS * 0.9, f"the phone measured only {measured}s"
    assert abs(float(record["duration"]) - measured) <= DURATION_TOLERANCE, (
        f"CDR duration {record['duration']}s vs {measured}s measured by the caller: {cdrs}"
    )

    live_after = _poll(
        lambda: api.calls(account_id),
        lambda rows: confirmed["sip_call_id"] not in call_ids(rows),
        3.0,
    )
    assert confirmed["sip_call_id"] not in call_ids(live_after), f"call still live: {live_after}"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_pjsua2_registers_with_digest_algorithm(
    algorithm: str,
    gateway_factory: Callable[..., GatewayProcess],
    pj_phone: Any,
) -> None:
    """A gateway offering only `algorithm` (--digest) is answered with it, and accepts it."""
    gw = gateway_factory(extra_args=("--digest", algorithm))
    api = VoiplabApi(gw.api_url, gw.spec.token)
    try:
        account = api.create_account()
        phone_line = api.provision_line(account, "301")
        pj_phone.add_account(phone_line.sip_account(gw.sip_address, algorithm=algorithm))
        reg = pj_phone.wait_event(REG_TIMEOUT, event="reg")
        assert reg is not None and reg["code"] == 200, f"REGISTER with {algorithm}: {reg}"
        auths = pj_phone.sent_authorizations()
        assert auths, "no Authorization header sent"
        assert {_algorithm_of(a) for a in auths} == {algorithm}, auths
        rows = _poll(
            lambda: api.registrations(account),
            lambda r: phone_line.sip_username in registered_usernames(r),
            3.0,
        )
        assert phone_line.sip_username in registered_usernames(rows), rows
    finally:
        api.close()


def test_pjsua2_unregister_removes_binding(
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    pj_phone: Any,
) -> None:
    phone_line = line()
    pj_phone.add_account(phone_line.sip_account(gateway.sip_address))
    reg = pj_phone.wait_event(REG_TIMEOUT, event="reg")
    assert reg is not None and reg["code"] == 200, reg
    pj_phone.events.clear()
    pj_phone.unregister()
    unreg = pj_phone.wait_event(REG_TIMEOUT, event="reg")
    assert unreg is not None and unreg["code"] == 200, f"un-REGISTER: {unreg}"
    rows = _poll(
        lambda: api.registrations(account_id),
        lambda r: phone_line.sip_username not in registered_usernames(r),
        3.0,
    )
    assert phone_line.sip_username not in registered_usernames(rows), rows


@pytest.mark.parametrize(("transport", "host"), [("tcp", "127.0.0.1"), ("udp", "::1"), ("tcp", "::1")])
def test_pjsua2_registers_over_tcp_and_ipv6(
    transport: str,
    host: str,
    gateway: GatewayProcess,
    gateway_factory: Callable[..., GatewayProcess],
    phone_process: Callable[..., Any],
) -> None:
    """UDP and TCP share the SIP port; `--sip [::1]:port` serves IPv6 the same way."""
    if ":" in host:
        if not ipv6_loopback_available():
            pytest.skip("::1 cannot be bound on this host (no IPv6 loopback)")
        gw = gateway_factory(sip_host=host)
    else:
        gw = gateway
    api = VoiplabApi(gw.api_url, gw.spec.token)
    try:
        account = api.create_account()
        phone_line = api.provision_line(account, "401")
        phone = phone_process(
            phone_line.sip_account(gw.sip_address, transport=transport),
            name=f"{transport}-{'v6' if ':' in host else 'v4'}",
            bind=host,
        )
        reg = phone.expect(REG_TIMEOUT, event="reg")
        assert (reg["code"], reg["reason"]) == (200, "OK"), reg
        rows = _poll(
            lambda: api.registrations(account),
            lambda r: phone_line.sip_username in registered_usernames(r),
            3.0,
        )
        assert phone_line.sip_username in registered_usernames(rows), rows
        assert registration_transports(rows, phone_line.sip_username) == {transport}, rows
    finally:
        api.close()

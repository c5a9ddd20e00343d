"""In-dialog requests through the gateway with real phones (issue §5): a hold/unhold re-INVITE
from the caller and a BYE from the *callee*, both routed by the Record-Route set."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.peers.api import ProvisionedLine, VoiplabApi, cdr_summary
from tests.peers.gateway import GatewayProcess

pytestmark = pytest.mark.peers

TIMEOUT = 10.0


def test_reinvite_hold_unhold_and_callee_bye(
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    pj_phone: Any,
    phone_process: Callable[..., Any],
) -> None:
    caller, callee = line(), line()
    bob = phone_process(callee.sip_account(gateway.sip_address), name="bob", answer="200")
    assert bob.expect(TIMEOUT, event="reg")["code"] == 200
    pj_phone.add_account(caller.sip_account(gateway.sip_address))
    reg = pj_phone.wait_event(TIMEOUT, event="reg")
    assert reg is not None and reg["code"] == 200, reg

    call = pj_phone.call(callee.uri())
    assert pj_phone.wait_event(TIMEOUT, event="call_state", state="CONFIRMED") is not None
    incoming = bob.expect(TIMEOUT, event="incoming")
    bob.expect(TIMEOUT, event="media", status="active")

    pj_phone.hold(call)
    assert pj_phone.wait_event(TIMEOUT, event="media", status="local_hold") is not None, (
        "hold re-INVITE not answered"
    )
    bob.expect(TIMEOUT, event="media", status="remote_hold")

    pj_phone.events.clear()
    bob.events.clear()
    pj_phone.unhold(call)
    assert pj_phone.wait_event(TIMEOUT, event="media", status="active") is not None, (
        "unhold re-INVITE not answered"
    )
    bob.expect(TIMEOUT, event="media", status="active")

    bob.send(cmd="hangup", call=incoming["call"])  # BYE in the other direction
    ended = pj_phone.wait_event(TIMEOUT, event="call_state", state="DISCONNECTED")
    assert ended is not None, "the callee's BYE did not reach the caller"
    bob.expect(TIMEOUT, event="call_state", state="DISCONNECTED")

    deadline = time.monotonic() + 5
    rows = api.cdrs(account_id)
    while not rows and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = api.cdrs(account_id)
    assert len(rows) == 1, rows
    record = cdr_summary(rows[0])
    assert record["disposition"] == "answered" and record["ended"], record

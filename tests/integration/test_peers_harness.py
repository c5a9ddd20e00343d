"""The real-peer harness on its own, without the gateway.

When a gateway test fails, these say whether the tools themselves still work here: a pjsua2
phone in this process calls a pjsua2 phone in a subprocess directly, and the RFC 4475 verdict
rules behave as the kit README describes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.peers.accounts import SipAccount
from tests.peers.rfc4475 import Outcome, Reply, TortureMessage, judge

HOLD_SECONDS = 1.0


@pytest.mark.peers
def test_pjsua2_direct_call_between_two_processes(
    pj_phone: Any, phone_process: Callable[..., Any]
) -> None:
    callee = phone_process(None, name="callee", answer="200")
    port = callee.expect(10, event="ready")["sip_port"]

    pj_phone.add_account(SipAccount("caller", "", f"127.0.0.1:{pj_phone.sip_port}"))
    call = pj_phone.call(f"sip:phone@127.0.0.1:{port}")
    confirmed = pj_phone.wait_event(10, event="call_state", state="CONFIRMED")
    assert confirmed is not None, "direct call not confirmed"
    assert callee.expect(5, event="media")["active"]
    pj_phone.run_until(lambda: False, HOLD_SECONDS)
    pj_phone.hangup(call)
    ended = pj_phone.wait_event(5, event="call_state", state="DISCONNECTED")
    assert ended is not None
    remote_end = callee.expect(5, event="call_state", state="DISCONNECTED")
    assert remote_end["sip_call_id"] == confirmed["sip_call_id"]
    assert abs(float(remote_end["duration"]) - float(ended["duration"])) < 0.5


def _outcome(name: str, expected: str, data: bytes, *codes: int) -> Outcome:
    msg = TortureMessage(name, "x", expected, "", data)
    return Outcome(msg, [Reply(5060, f"SIP/2.0 {c} X", None, b"") for c in codes])


REQ = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"
RESP = b"SIP/2.0 200 OK\r\n\r\n"


@pytest.mark.parametrize(
    ("outcome", "ok"),
    [
        (_outcome("v", "valid", REQ, 100, 404), True),
        (_outcome("v", "valid", REQ), True),
        (_outcome("v", "valid", REQ, 400), False),
        (_outcome("i", "invalid", REQ, 400), True),
        (_outcome("i", "invalid", REQ, 404), False),
        (_outcome("i", "invalid", REQ), False),
        (_outcome("clerr", "invalid", REQ), True),
        (_outcome("badvers", "invalid", REQ, 505), True),
        (_outcome("mismatch02", "invalid", REQ, 501), True),
        (_outcome("trws", "invalid", REQ, 200), True),
        (_outcome("r", "valid", RESP), True),
        (_outcome("r", "valid", RESP, 400), False),
    ],
)
def test_rfc4475_verdict_rules(outcome: Outcome, ok: bool) -> None:
    assert judge(outcome).ok is ok, judge(outcome)

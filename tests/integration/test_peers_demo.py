"""Acceptance: `voiplab serve --demo` (what `make run` starts) prints settings that real pjsua2
phones register with, and the two demo phones can call each other."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.peers.demo import parse_demo_settings
from tests.peers.gateway import GatewayProcess

pytestmark = pytest.mark.peers


def test_demo_credentials_register_and_call(
    gateway_factory: Callable[..., GatewayProcess],
    pj_phone: Any,
    phone_process: Callable[..., Any],
) -> None:
    gw = gateway_factory(extra_args=("--demo",))
    deadline = time.monotonic() + 10
    lines = parse_demo_settings(gw.log_since())
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        lines = parse_demo_settings(gw.log_since())
    assert len(lines) >= 2, f"no two demo lines printed:\n{gw.log_since()}"
    first, second = lines[0], lines[1]
    assert first.registrar.rsplit(":", 1)[-1] == str(gw.sip_port), first

    callee = phone_process(second.sip_account(), name="demo-callee", answer="200")
    assert callee.expect(10, event="reg")["code"] == 200
    pj_phone.add_account(first.sip_account())
    reg = pj_phone.wait_event(10, event="reg")
    assert reg is not None and reg["code"] == 200, reg

    call = pj_phone.call(second.uri())
    confirmed = pj_phone.wait_event(10, event="call_state", state="CONFIRMED")
    assert confirmed is not None, "demo call not answered"
    pj_phone.hangup(call)
    assert pj_phone.wait_event(10, event="call_state", state="DISCONNECTED") is not None

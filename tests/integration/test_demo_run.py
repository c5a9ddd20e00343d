"""`make run` end to end: `voiplab serve --demo` prints settings a real softphone registers with.

The test reads the credentials exactly as a person would, from what the server printed, and
registers a real pjsua2 phone with them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.peers.gateway import GatewayProcess
from tests.peers.pjphone import SipAccount

pytestmark = pytest.mark.peers

BLOCK = re.compile(
    r"\((?:extension) (?P<ext>\d+)\)\s+SIP server / registrar : (?P<server>\S+) .*?\n"
    r"\s+domain / realm\s+: (?P<domain>\S+)\s+username / auth user\s+: (?P<user>\S+)\s+"
    r"password\s+: (?P<password>\S+)",
    re.S,
)


def printed_credentials(gw: GatewayProcess, timeout: float = 10.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m.groupdict() for m in BLOCK.finditer(gw.log_since(0))]
        if len(found) >= 2:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no demo credentials printed:\n{gw.log_since(0)}")


def test_demo_prints_settings_a_real_phone_registers_with(
    gateway_factory: Callable[..., GatewayProcess], pj_phone: Any
) -> None:
    gw = gateway_factory(extra_args=("--demo",))
    first, second = printed_credentials(gw)
    assert (first["ext"], second["ext"]) == ("1001", "1002")
    assert first["server"] == gw.sip_address
    pj_phone.add_account(SipAccount(username=first["user"], password=first["password"],
                                    domain=first["domain"], registrar=first["server"]))
    reg = pj_phone.wait_event(10.0, event="reg")
    assert reg is not None and reg["code"] == 200, f"demo credentials refused: {reg}"

"""Registrations the gateway must refuse, seen from a real pjsua2 phone.

- R12: a device that is not active (never located, or located but not activated) gets
  `403 Device not activated: emergency location required (R12)`; activation without a location
  is refused with 409 naming R12.
- No user enumeration: a wrong password and an unknown user get the same challenge and the same
  final answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.peers.accounts import SipAccount
from tests.peers.api import ApiError, ProvisionedLine, VoiplabApi
from tests.peers.gateway import GatewayProcess
from tests.peers.pjsip_log import sip_messages

pytestmark = pytest.mark.peers

R12_REASON = "Device not activated: emergency location required (R12)"
REG_TIMEOUT = 10.0


@pytest.mark.parametrize("located", [False, True], ids=["never-located", "located-not-activated"])
def test_inactive_device_register_refused_with_r12(
    located: bool,
    gateway: GatewayProcess,
    line: Callable[..., ProvisionedLine],
    pj_phone: Any,
) -> None:
    inactive = line(locate=located, activate=False)
    pj_phone.add_account(inactive.sip_account(gateway.sip_address))
    reg = pj_phone.wait_event(REG_TIMEOUT, event="reg")
    assert reg is not None, "no final answer to REGISTER"
    assert (reg["code"], reg["reason"]) == (403, R12_REASON), reg
    # the status line on the wire, not just what pjsua reports
    finals = [
        m.splitlines()[0]
        for d, m in sip_messages(pj_phone.sip_log())
        if d == "RX" and m.startswith("SIP/2.0 403")
    ]
    assert finals and finals[-1] == f"SIP/2.0 403 {R12_REASON}", finals


def test_activation_without_location_is_409_r12(
    api: VoiplabApi, account_id: int, line: Callable[..., ProvisionedLine]
) -> None:
    inactive = line(locate=False, activate=False)
    with pytest.raises(ApiError) as refused:
        api.activate(inactive.device_id)
    assert refused.value.status == 409, refused.value
    assert "R12" in refused.value.body, refused.value.body


def _challenge_shape(log: str) -> list[tuple[str, ...]]:
    """The first 401/407's challenges without their per-request values (nonce, opaque)."""
    for direction, msg in sip_messages(log):
        if direction == "RX" and re.match(r"SIP/2\.0 40[17] ", msg):
            shapes = []
            for line in msg.splitlines():
                m = re.match(r"(WWW|Proxy)-Authenticate\s*:\s*(\S+)\s+(.*)", line, flags=re.I)
                if m:
                    params = dict(
                        (k.lower(), v.strip('"'))
                        for k, v in re.findall(r'([\w-]+)\s*=\s*("[^"]*"|[^,\s]+)', m.group(3))
                    )
                    shapes.append(
                        (
                            m.group(1).lower(),
                            m.group(2).lower(),
                            params.get("realm", ""),
                            params.get("algorithm", "MD5").upper(),
                            params.get("qop", ""),
                            ",".join(sorted(k for k in params if k not in ("nonce", "opaque"))),
                        )
                    )
            return shapes
    return []


def _final_status_line(log: str) -> str | None:
    lines = [
        m.splitlines()[0]
        for d, m in sip_messages(log)
        if d == "RX" and m.startswith("SIP/2.0 ") and not re.match(r"SIP/2\.0 1\d\d ", m)
    ]
    return lines[-1] if lines else None


def test_wrong_password_and_unknown_user_get_the_same_answer(
    gateway: GatewayProcess,
    line: Callable[..., ProvisionedLine],
    phone_process: Callable[..., Any],
) -> None:
    real = line()
    wrong_password = SipAccount(
        username=real.sip_username,
        password=real.sip_password + "x",
        domain=real.sip_domain,
        registrar=gateway.sip_address,
    )
    unknown_user = SipAccount(
        username=f"{real.extension}-nosuch",
        password=real.sip_password,
        domain=real.sip_domain,
        registrar=gateway.sip_address,
    )
    phones = {
        "wrong-password": phone_process(
            wrong_password, name="wrong-password", extra_args=["--exit-after-reg"]
        ),
        "unknown-user": phone_process(
            unknown_user, name="unknown-user", extra_args=["--exit-after-reg"]
        ),
    }
    regs = {name: p.expect(REG_TIMEOUT, event="reg") for name, p in phones.items()}
    for p in phones.values():
        p.close()
    for name, reg in regs.items():
        assert reg["code"] >= 400, f"{name} was not refused: {reg}"
    assert (regs["wrong-password"]["code"], regs["wrong-password"]["reason"]) == (
        regs["unknown-user"]["code"],
        regs["unknown-user"]["reason"],
    ), regs

    logs = {name: p.log_file.read_text(errors="replace") for name, p in phones.items()}
    shapes = {name: _challenge_shape(log) for name, log in logs.items()}
    assert shapes["unknown-user"], "the unknown user was not challenged (answer reveals it)"
    assert shapes["wrong-password"] == shapes["unknown-user"], shapes
    finals = {name: _final_status_line(log) for name, log in logs.items()}
    assert finals["wrong-password"] == finals["unknown-user"], finals

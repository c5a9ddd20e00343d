"""SIPp against a real `voiplab serve`: digest REGISTER, a UAC→UAS call, the R12 refusal.

Scenarios: tests/data/sipp/peers_*.xml. SIPp's own digest code and wire format (no spaces after
commas in Authorization, Call-ID "N-pid@ip") check the gateway independently of pjsua2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.peers.api import ProvisionedLine, VoiplabApi, cdr_summary, registered_usernames
from tests.peers.gateway import GatewayProcess
from tests.peers.ports import free_port
from tests.peers.sipp import SippBackground, SippRun, run_sipp, scenario

pytestmark = pytest.mark.peers

HOLD_MS = 1000


def _register(gateway: GatewayProcess, who: ProvisionedLine, workdir: Path, tag: str,
              port: int = 0, scen: str = "peers_register_auth.xml") -> Any:
    return run_sipp(
        SippRun(
            scenario(scen),
            gateway.sip_address,
            local_port=port,
            service=who.sip_username,
            auth_user=who.sip_username,
            auth_password=who.sip_password,
            auth_uri=who.sip_domain,  # SIPp adds "sip:": matches the Request-URI sip:DOMAIN
            keys={"domain": who.sip_domain, "expires": "60"},
        ),
        workdir,
        tag,
    )


def test_sipp_register_with_digest(
    sipp_binary: str,
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    tmp_path: Path,
) -> None:
    who = line()
    result = _register(gateway, who, tmp_path, "register")
    assert result.ok, result.describe()
    rows = api.registrations(account_id)
    assert who.sip_username in registered_usernames(rows), rows


def test_sipp_wrong_password_is_refused(
    sipp_binary: str, gateway: GatewayProcess, line: Callable[..., ProvisionedLine], tmp_path: Path
) -> None:
    who = line()
    bad = ProvisionedLine(**{**who.__dict__, "sip_password": who.sip_password + "x"})
    result = _register(gateway, bad, tmp_path, "register-bad")
    assert result.returncode == 1, result.describe()  # 401 again or 403: the scenario's 200 never comes
    assert "SIP/2.0 200" not in result.messages, result.describe()


def test_sipp_inactive_device_refused_with_r12(
    sipp_binary: str, gateway: GatewayProcess, line: Callable[..., ProvisionedLine], tmp_path: Path
) -> None:
    inactive = line(locate=False, activate=False)
    result = _register(gateway, inactive, tmp_path, "register-r12", scen="peers_register_r12.xml")
    assert result.ok, result.describe()


def test_sipp_uac_to_uas_call_through_gateway(
    sipp_binary: str,
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    tmp_path: Path,
) -> None:
    caller, callee = line(), line()
    uas_port = free_port()
    # the callee's binding points at the port the UAS will listen on
    reg = _register(gateway, callee, tmp_path, "register-callee", port=uas_port)
    assert reg.ok, reg.describe()

    uas = SippBackground(SippRun(scenario("peers_uas.xml"), local_port=uas_port), tmp_path, "uas")
    try:
        time.sleep(0.3)  # let the UAS bind before the INVITE can arrive
        uac = run_sipp(
            SippRun(
                scenario("peers_uac_auth_call.xml"),
                gateway.sip_address,
                service=callee.extension,
                auth_user=caller.sip_username,
                auth_password=caller.sip_password,
                auth_uri=f"{callee.extension}@{callee.sip_domain}",  # the INVITE's Request-URI
                keys={"domain": caller.sip_domain, "caller": caller.sip_username},
                hold_ms=HOLD_MS,
            ),
            tmp_path,
            "uac",
        )
    finally:
        uas_result = uas.wait(15)
    assert uac.ok, uac.describe() + "\n\n=== UAS ===\n" + uas_result.describe()
    assert uas_result.ok, uas_result.describe()

    deadline = time.monotonic() + 5
    cdrs = api.cdrs(account_id)
    while not cdrs and time.monotonic() < deadline:
        time.sleep(0.1)
        cdrs = api.cdrs(account_id)
    assert len(cdrs) == 1, cdrs
    record = cdr_summary(cdrs[0])
    assert record["disposition"] == "answered", cdrs
    assert float(record["duration"]) >= HOLD_MS / 1000 * 0.5, cdrs

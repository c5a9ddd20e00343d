"""`voiplab serve --registrar-workers 2`: REGISTER handled by worker processes, calls by the main one.

Real SIPp peers against a real gateway. The Call-IDs are chosen (SIPp `-cid_str`) so that one
phone's REGISTER goes to each worker (the main process picks the worker by a hash of the Call-ID,
`gateway.regworkers.worker_for`); the test then checks what the design promises: the main
process sees every binding (GET /registrations says which worker took it), routes a call to a
phone registered at a worker, and a provisioning change reaches the workers (the suspended
device's binding is gone everywhere and its next REGISTER is refused by the worker).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.regworkers import worker_for
from tests.peers.api import API, ProvisionedLine, VoiplabApi, cdr_summary
from tests.peers.gateway import GatewayProcess
from tests.peers.ports import free_port
from tests.peers.sipp import SippBackground, SippRun, run_sipp, scenario

pytestmark = pytest.mark.peers

WORKERS = 2


def call_id_prefix_for(worker_index: int, taken: set[str]) -> str:
    """A SIPp -cid_str whose first Call-ID ("<prefix>-1") the main process sends to that worker."""
    for n in itertools.count():
        prefix = f"wk{worker_index}x{n}"
        if prefix not in taken and worker_for(f"\r\nCall-ID: {prefix}-1\r\n".encode(), WORKERS) == worker_index:
            taken.add(prefix)
            return prefix
    raise AssertionError("unreachable")


def register(gw: GatewayProcess, who: ProvisionedLine, workdir: Path, tag: str, prefix: str, *,
             port: int = 0, scen: str = "peers_register_auth.xml") -> Any:
    return run_sipp(SippRun(
        scenario(scen), gw.sip_address, local_port=port, service=who.sip_username,
        auth_user=who.sip_username, auth_password=who.sip_password, auth_uri=who.sip_domain,
        keys={"domain": who.sip_domain, "expires": "60"}, extra=("-cid_str", f"{prefix}-%u"),
    ), workdir, tag)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def workers_gateway(gateway_factory: Callable[..., GatewayProcess]) -> GatewayProcess:
    return gateway_factory(extra_args=("--registrar-workers", str(WORKERS)))


@pytest.fixture
def wapi(workers_gateway: GatewayProcess) -> Any:
    client = VoiplabApi(workers_gateway.api_url, workers_gateway.spec.token)
    yield client
    client.close()


def test_registrations_taken_by_workers_reach_the_main_process_and_calls_reach_them(
    sipp_binary: str, workers_gateway: GatewayProcess, wapi: VoiplabApi, tmp_path: Path
) -> None:
    account = wapi.create_account()
    caller = wapi.provision_line(account, "201")
    callee = wapi.provision_line(account, "202")
    taken: set[str] = set()
    uas_port = free_port()
    reg = register(workers_gateway, callee, tmp_path, "reg-callee", call_id_prefix_for(0, taken), port=uas_port)
    assert reg.ok, reg.describe()
    reg = register(workers_gateway, caller, tmp_path, "reg-caller", call_id_prefix_for(1, taken))
    assert reg.ok, reg.describe()

    def rows() -> dict[str, str]:
        return {r["aor"].split(":", 1)[-1].split("@", 1)[0]: r["registrar"] for r in wapi.registrations(account)}

    seen = wait_for(lambda: rows() if len(rows()) == 2 else None)
    assert seen == {callee.sip_username: "worker-1", caller.sip_username: "worker-2"}, rows()

    uas = SippBackground(SippRun(scenario("peers_uas.xml"), local_port=uas_port), tmp_path, "uas")
    try:
        time.sleep(0.3)
        uac = run_sipp(SippRun(
            scenario("peers_uac_auth_call.xml"), workers_gateway.sip_address, service=callee.extension,
            auth_user=caller.sip_username, auth_password=caller.sip_password,
            auth_uri=f"{callee.extension}@{callee.sip_domain}",
            keys={"domain": caller.sip_domain, "caller": caller.sip_username}, hold_ms=500,
        ), tmp_path, "uac")
    finally:
        uas_result = uas.wait(15)
    assert uac.ok, uac.describe() + "\n\n=== UAS ===\n" + uas_result.describe()
    assert uas_result.ok, uas_result.describe()
    cdrs = wait_for(lambda: wapi.cdrs(account))
    assert [cdr_summary(c)["disposition"] for c in cdrs] == ["answered"], cdrs


def test_a_suspended_device_loses_its_binding_everywhere_and_the_worker_refuses_it(
    sipp_binary: str, workers_gateway: GatewayProcess, wapi: VoiplabApi, tmp_path: Path
) -> None:
    account = wapi.create_account()
    phone = wapi.provision_line(account, "301")
    prefix = call_id_prefix_for(1, set())
    reg = register(workers_gateway, phone, tmp_path, "reg", prefix)
    assert reg.ok, reg.describe()
    assert wait_for(lambda: wapi.registrations(account)), "the worker's binding never reached the main process"

    wapi.request("POST", f"{API}/devices/{phone.device_id}/suspend")
    assert wait_for(lambda: not wapi.registrations(account)), wapi.registrations(account)

    # the same worker (same Call-ID) now refuses the device: its snapshot followed the change
    refused = register(workers_gateway, phone, tmp_path, "reg-after", prefix, scen="peers_register_r12.xml")
    assert refused.returncode == 1, refused.describe()  # not the R12 wording: a suspended device
    assert "SIP/2.0 200" not in refused.messages, refused.describe()
    assert "SIP/2.0 403" in refused.messages, refused.describe()

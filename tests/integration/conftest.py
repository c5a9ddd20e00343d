"""Fixtures for tests against a real `voiplab serve` process and real SIP peers.

- `voiplab_gateway` (session): `voiplab serve` on free 127.0.0.1 ports, a temp SQLite DB and a
  random API token; waits for `/healthz`; SIGTERM at the end. Started once: each test provisions
  its own account, so tests never see each other's lines, calls or CDRs.
- `gateway`: the same process, plus "attach the server log written during this test to the
  report if it fails".
- `gateway_factory`: extra gateways with other options (e.g. `--digest SHA-256`), same care.
- `api`, `account_id`, `line`: provisioning through the HTTP API (tests/peers/api.py holds every
  path and field name).
- `pj_phone`: one in-process pjsua2 phone (one Endpoint per process); `phone_process`: more
  phones as subprocesses. Their event logs are attached to a failing test's report too.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `tests.peers` must import however pytest was started
    sys.path.insert(0, str(_ROOT))

from tests.peers.api import ProvisionedLine, VoiplabApi  # noqa: E402
from tests.peers.gateway import GatewayError, GatewayProcess, GatewaySpec  # noqa: E402

# Per-test list of (title, callable returning text) shown in the report when the test fails.
FAILURE_CONTEXT = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()


def add_failure_context(node: pytest.Item, title: str, produce: Callable[[], str]) -> None:
    node.stash.setdefault(FAILURE_CONTEXT, []).append((title, produce))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        for title, produce in item.stash.get(FAILURE_CONTEXT, []):
            try:
                text = produce()
            except Exception as exc:  # the context must never hide the real failure
                text = f"[could not collect: {exc!r}]"
            if text.strip():
                report.sections.append((f"{title} ({report.when})", text))
    return report


def _start_gateway(workdir: Path, **spec: Any) -> GatewayProcess:
    gw = GatewayProcess(GatewaySpec(workdir=workdir, token=secrets.token_urlsafe(18), **spec))
    try:
        gw.start()
    except GatewayError as exc:
        pytest.fail(f"voiplab serve did not come up: {exc}", pytrace=False)
    return gw


@pytest.fixture(scope="session")
def voiplab_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    gw = _start_gateway(tmp_path_factory.mktemp("voiplab-gateway"))
    yield gw
    gw.stop()


@pytest.fixture
def gateway(voiplab_gateway: GatewayProcess, request: pytest.FixtureRequest) -> GatewayProcess:
    offset = voiplab_gateway.log_size()
    add_failure_context(
        request.node, "voiplab serve log during this test", lambda: voiplab_gateway.log_since(offset)
    )
    if not voiplab_gateway.alive():
        pytest.fail(
            f"voiplab serve died earlier in the session:\n{voiplab_gateway.log_since(0)[-5000:]}",
            pytrace=False,
        )
    return voiplab_gateway


@pytest.fixture
def gateway_factory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., GatewayProcess]]:
    """Start extra gateways: `gateway_factory(extra_args=("--digest", "SHA-256"))`."""
    started: list[GatewayProcess] = []
    counter = itertools.count()

    def start(**spec: Any) -> GatewayProcess:
        workdir = tmp_path / f"gateway-{next(counter)}"
        workdir.mkdir()
        gw = _start_gateway(workdir, **spec)
        started.append(gw)
        add_failure_context(request.node, f"voiplab serve log ({workdir.name})", gw.log_since)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
def api(gateway: GatewayProcess) -> Iterator[VoiplabApi]:
    client = VoiplabApi(gateway.api_url, gateway.spec.token)
    yield client
    client.close()


@pytest.fixture
def account_id(api: VoiplabApi) -> int:
    """A fresh account per test: its registrations, calls and CDRs are this test's alone."""
    return api.create_account()


@pytest.fixture
def line(api: VoiplabApi, account_id: int) -> Callable[..., ProvisionedLine]:
    """`line()` → a located, activated softphone line with the next free extension."""
    extensions = itertools.count(201)

    def make(*, locate: bool = True, activate: bool = True) -> ProvisionedLine:
        return api.provision_line(account_id, str(next(extensions)), locate=locate, activate=activate)

    return make


# --- phones ------------------------------------------------------------------------------------
@pytest.fixture
def pjsua2_available() -> None:
    try:
        import pjsua2  # noqa: F401
    except Exception as exc:  # ImportError or a broken native library
        pytest.skip(f"pjsua2 cannot be imported here ({exc!r}): real-phone tests need pjsua2-python")


@pytest.fixture
def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.skip("sipp is not installed (Debian package sip-tester; `make test` installs it)")
    return path


@pytest.fixture
def event_pumps() -> list[Callable[[], None]]:
    """Pumps of this test's in-process phone: run while waiting on subprocess phones."""
    return []


@pytest.fixture
def pj_phone(
    pjsua2_available: None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    event_pumps: list[Callable[[], None]],
) -> Iterator[Any]:
    """The one in-process pjsua2 phone of this test (destroyed after it)."""
    from tests.peers.pjphone import PhoneConfig, PjPhone

    phone = PjPhone(PhoneConfig(log_file=tmp_path / "pj_phone.pjsip.log"))
    phone.start()
    event_pumps.append(lambda: phone.pump(10) if phone.running else None)
    add_failure_context(request.node, "in-process phone events", lambda: _events_text(phone.events))
    add_failure_context(request.node, "in-process phone SIP log (tail)", lambda: phone.sip_log()[-8000:])
    yield phone
    phone.close()


@pytest.fixture
def phone_process(
    pjsua2_available: None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    event_pumps: list[Callable[[], None]],
) -> Iterator[Callable[..., Any]]:
    """`phone_process(sip_account, name=…, answer="200", …)` → a PhoneProcess, closed after.

    While a test waits on it, the in-process phone (if any) keeps being pumped.
    """
    from tests.peers.phone_process import PhoneProcess

    started: list[PhoneProcess] = []

    def idle() -> None:
        if event_pumps:
            for pump in event_pumps:
                pump()
        else:
            time.sleep(0.01)

    def start(account: Any, **kw: Any) -> PhoneProcess:
        proc = PhoneProcess(account, tmp_path, idle=idle, **kw)
        started.append(proc)
        add_failure_context(request.node, f"phone process {proc.name}", proc.describe)
        return proc

    yield start
    for proc in started:
        proc.close()


def _events_text(events: list[dict[str, Any]]) -> str:
    import json

    return "\n".join(json.dumps(e, sort_keys=True) for e in events)

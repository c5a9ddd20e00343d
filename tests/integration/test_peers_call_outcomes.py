"""Calls that are not simply answered, and forking, with real pjsua2 phones.

Each call attempt must leave one CDR whose disposition and code match what the caller saw
(issue §7: answered, busy, no-answer, cancelled, rejected + code). Forking (issue §5): every
registered contact rings in parallel, the first 2xx wins, the others are CANCELled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.peers.api import ProvisionedLine, VoiplabApi, cdr_summary
from tests.peers.gateway import GatewayProcess

pytestmark = pytest.mark.peers

REG_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0


def _one_cdr(api: VoiplabApi, account_id: int, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    rows = api.cdrs(account_id)
    while not rows and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = api.cdrs(account_id)
    assert len(rows) == 1, f"expected one call record: {rows}"
    return cdr_summary(rows[0])


def _registered_caller(pj_phone: Any, who: ProvisionedLine, gateway: GatewayProcess) -> None:
    pj_phone.add_account(who.sip_account(gateway.sip_address))
    reg = pj_phone.wait_event(REG_TIMEOUT, event="reg")
    assert reg is not None and reg["code"] == 200, f"caller REGISTER: {reg}"


def test_busy_callee_gives_busy_cdr(
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    pj_phone: Any,
    phone_process: Callable[..., Any],
) -> None:
    caller, callee = line(), line()
    busy = phone_process(callee.sip_account(gateway.sip_address), name="busy", answer="486")
    assert busy.expect(REG_TIMEOUT, event="reg")["code"] == 200
    _registered_caller(pj_phone, caller, gateway)

    pj_phone.call(callee.uri())
    ended = pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    assert ended is not None and ended["code"] == 486, ended
    record = _one_cdr(api, account_id)
    assert (record["disposition"], record["sip_code"]) == ("busy", 486), record
    assert record["call_id"] == ended["sip_call_id"], record


def test_caller_cancel_while_ringing_gives_cancelled_cdr(
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    pj_phone: Any,
    phone_process: Callable[..., Any],
) -> None:
    caller, callee = line(), line()
    ringing = phone_process(callee.sip_account(gateway.sip_address), name="ringing", answer="none")
    assert ringing.expect(REG_TIMEOUT, event="reg")["code"] == 200
    _registered_caller(pj_phone, caller, gateway)

    call = pj_phone.call(callee.uri())
    incoming = ringing.expect(CALL_TIMEOUT, event="incoming")
    ringing.send(cmd="answer", call=incoming["call"], code=180)
    early = pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="EARLY")
    assert early is not None, "no 180 reached the caller"
    pj_phone.hangup(call)  # CANCEL
    ended = pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    assert ended is not None and ended["code"] == 487, ended
    callee_end = ringing.expect(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    assert callee_end["code"] == 487, callee_end
    record = _one_cdr(api, account_id)
    assert record["disposition"] == "cancelled", record
    assert not record["answered"], record


@pytest.mark.parametrize(
    ("target", "code", "dispositions"),
    [
        ("unregistered", 480, {"no-answer", "rejected"}),  # known extension, no binding
        ("unknown", 404, {"rejected"}),
    ],
)
def test_unreachable_callee_is_refused_and_recorded(
    target: str,
    code: int,
    dispositions: set[str],
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    pj_phone: Any,
) -> None:
    caller = line()
    # "unregistered": a provisioned extension with no binding; "unknown": no user has 990
    uri = line().uri() if target == "unregistered" else f"sip:990@{caller.sip_domain}"
    _registered_caller(pj_phone, caller, gateway)

    pj_phone.call(uri)
    ended = pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    assert ended is not None and ended["code"] == code, ended
    record = _one_cdr(api, account_id)
    assert record["sip_code"] == code, record
    assert record["disposition"] in dispositions, record


def test_parallel_fork_first_answer_wins_other_contact_cancelled(
    gateway: GatewayProcess,
    api: VoiplabApi,
    account_id: int,
    line: Callable[..., ProvisionedLine],
    pj_phone: Any,
    phone_process: Callable[..., Any],
) -> None:
    caller, callee = line(), line()
    # two phones register the same line: two contacts for one address of record
    fast = phone_process(callee.sip_account(gateway.sip_address), name="fast", answer_after=0.3)
    slow = phone_process(callee.sip_account(gateway.sip_address), name="slow", answer="none")
    assert fast.expect(REG_TIMEOUT, event="reg")["code"] == 200
    assert slow.expect(REG_TIMEOUT, event="reg")["code"] == 200
    _registered_caller(pj_phone, caller, gateway)

    call = pj_phone.call(callee.uri())
    confirmed = pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="CONFIRMED")
    assert confirmed is not None, "forked call not answered"
    slow.expect(CALL_TIMEOUT, event="incoming")  # it did ring in parallel
    slow_end = slow.expect(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    assert slow_end["code"] == 487, f"the losing branch was not CANCELled: {slow_end}"
    assert fast.expect(2.0, event="call_state", state="CONFIRMED")

    pj_phone.hangup(call)
    assert pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    fast.expect(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    record = _one_cdr(api, account_id)
    assert record["disposition"] == "answered", record

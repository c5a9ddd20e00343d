"""Call policy caps (#5, R20) on live SIP with real peers: concurrency and duration.

Concurrency: a Grasshopper account may hold 50 calls. SIPp places them to the simulated PSTN (a
number that answers and stays up), pjsua2 places the 51st and must get 503 naming R20 while the 50
stay up; the PSTN hanging one up (lab API) frees the slot for the next. A call forked to two
registered phones holds one slot while both ring, and still one after the other branch is CANCELled.

Duration: with `--time-scale 3600` six simulated hours pass in six seconds. The gateway must end a
voice call at 6 h and a T.38 call at 3 h with a BYE to both legs carrying
`Reason: SIP;cause=…;text="…(R20)"`, and write R20 into the call record.

Every call here goes through `voiplab serve` over loopback UDP; no test asserts on timing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.api import ProvisionedLine, VoiplabApi, call_ids, wait_for
from tests.peers.gateway import GatewayProcess
from tests.peers.pjsip_log import sip_messages
from tests.peers.ports import free_port
from tests.peers.sipp import SippBackground, SippResult, SippRun, run_sipp, scenario

pytestmark = pytest.mark.peers

REG_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
GRASSHOPPER_CAP = 50  # provisioning/plans/grasshopper.toml max_concurrent_calls (R20)
HOLDING = "+14155550100"  # simulated PSTN default table: …0100 answers and stays up
AUDIO = {"media_type": "audio", "media_proto": "RTP/AVP 0", "media_attr": "rtpmap:0 PCMU/8000"}
T38 = {"media_type": "image", "media_proto": "udptl t38", "media_attr": "T38FaxVersion:0"}
TIME_SCALE = 3600.0  # simulated seconds per real second: 6 h ≈ 6 s
HOUR = 3600.0


# --- helpers -----------------------------------------------------------------------------------
def _until(predicate: Callable[[], bool], timeout: float, pump: Callable[[], None] | None = None) -> bool:
    """Poll `predicate` (pumping the in-process phone meanwhile) until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        if pump is not None:
            pump()
        else:
            time.sleep(0.05)
    return True


def _pump(phone: Any) -> Callable[[], None]:
    return lambda: phone.pump(20)


def _hold_run(gateway: GatewayProcess, caller: ProvisionedLine, number: str, *, calls: int = 1,
              media: dict[str, str] = AUDIO, timeout_s: float = 60.0) -> SippRun:
    """SIPp calls `number` through the gateway `calls` times at once, each held until hung up."""
    return SippRun(
        scenario("policy_uac_hold.xml"),
        gateway.sip_address,
        calls=calls,
        service=number,
        auth_user=caller.sip_username,
        auth_password=caller.sip_password,
        auth_uri=f"{number}@{caller.sip_domain}",
        keys={"caller": caller.sip_username, "domain": caller.sip_domain, **media},
        timeout_s=timeout_s,
        extra=("-r", str(max(calls, 1)), "-l", str(max(calls, 1))),
    )


def _confirmed(api: VoiplabApi, account_id: int) -> set[str]:
    return call_ids([c for c in api.calls(account_id) if c.get("state") == "confirmed"])


def _place(phone: Any, uri: str, timeout: float = CALL_TIMEOUT) -> tuple[int, dict[str, Any]]:
    """pjsua2 calls `uri`: (pjsua call id, the CONFIRMED or DISCONNECTED event that settled it).

    Events are matched from the moment of the call on: pjsua reuses call ids once a call ends.
    """
    seen = len(phone.events)
    cid = phone.call(uri)
    found: list[dict[str, Any]] = []

    def settled() -> bool:
        for ev in phone.events[seen:]:
            if ev.get("event") == "call_state" and ev.get("call") == cid \
                    and ev.get("state") in ("CONFIRMED", "DISCONNECTED"):
                found.append(ev)
                return True
        return False

    assert phone.run_until(settled, timeout), f"call to {uri} not settled within {timeout}s"
    return cid, found[0]



def _hang_up(phone: Any, cid: int) -> None:
    seen = len(phone.events)
    phone.hangup(cid)
    phone.run_until(lambda: any(e.get("call") == cid and e.get("state") == "DISCONNECTED"
                                for e in phone.events[seen:]), CALL_TIMEOUT)


def _record(api: VoiplabApi, call_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The one call record of `call_id` (the CDR writer is asynchronous: poll)."""
    rows = wait_for(lambda: api.cdrs_where(call_id=call_id), bool, timeout, f"call record of {call_id}")
    assert len(rows) == 1, f"expected one call record for {call_id}: {rows}"
    return rows[0]


def _end_all_pstn_calls(api: VoiplabApi, ids: set[str]) -> None:
    """The PSTN hangs up every call in `ids` that is still up (so SIPp finishes cleanly)."""
    for call in api.pstn_calls():
        if call["call_id"] in ids and call["state"] == "confirmed":
            api.pstn_hang_up(call["call_id"])


def _received(messages: str, method: str) -> list[str]:
    """Requests of `method` SIPp received, as message texts, from its -trace_msg log."""
    chunks = re.split(r"^-{10,}.*$", messages, flags=re.M)
    return [c.split(":", 1)[1].strip() for c in chunks
            if re.search(r"message received \[\d+\] bytes :", c)
            and c.split(":", 1)[1].strip().startswith(f"{method} ")]


def _reason(message: str) -> str:
    found = re.search(r"^Reason:\s*(.+?)\s*$", message, flags=re.M | re.I)
    return found.group(1) if found else ""


@pytest.fixture
def busy_phone(pj_phone: Any) -> Iterator[Any]:
    """`pj_phone` for a test that places more calls than pjsua has slots (ids get reused).

    PjPhone keeps the wrappers of calls whose id was reused (`_retired`) but does not release
    them in `close()`, so they are destroyed after `libDestroy` at interpreter exit, where
    pjsua2's `Call::~Call` asserts in `pjsua_call_set_user_data` and aborts pytest (exit 134).
    Released here, before the phone closes and once no call is up, they are harmless.
    """
    yield pj_phone
    if pj_phone.running:
        pj_phone.hangup()
        pj_phone.run_until(lambda: not pj_phone.active_calls(), 2.0)
        pj_phone._retired.clear()  # private: until PjPhone.close() does it


@pytest.fixture
def grasshopper(api: VoiplabApi) -> int:
    return api.create_account(plan="grasshopper")


@pytest.fixture
def sipp_work(tmp_path: Path) -> Path:
    work = tmp_path / "sipp"
    work.mkdir()
    return work


@pytest.fixture
def background() -> Iterator[Callable[[SippRun, Path, str], SippBackground]]:
    """Start SIPp processes that are stopped whatever the test did."""
    started: list[SippBackground] = []

    def start(run: SippRun, workdir: Path, tag: str) -> SippBackground:
        proc = SippBackground(run, workdir, tag)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


# --- concurrency cap (R20) ---------------------------------------------------------------------
def test_call_over_the_cap_is_refused_with_r20_while_the_first_fifty_stay_up(
    gateway: GatewayProcess,
    api: VoiplabApi,
    grasshopper: int,
    pj_phone: Any,
    sipp_binary: str,
    sipp_work: Path,
    background: Callable[[SippRun, Path, str], SippBackground],
) -> None:
    bulk = api.provision_line(grasshopper, "201", locate=False)
    extra = api.provision_line(grasshopper, "202", locate=False)
    pj_phone.add_account(extra.sip_account(gateway.sip_address))
    assert (reg := pj_phone.wait_event(REG_TIMEOUT, event="reg")) and reg["code"] == 200, reg

    fifty = background(_hold_run(gateway, bulk, HOLDING, calls=GRASSHOPPER_CAP), sipp_work, "fifty")
    pump = _pump(pj_phone)
    assert _until(lambda: len(_confirmed(api, grasshopper)) == GRASSHOPPER_CAP, 20, pump), \
        f"{GRASSHOPPER_CAP} calls not up: {api.calls(grasshopper)}"
    first = _confirmed(api, grasshopper)

    # the 51st: refused with 503, the rule named in the reason phrase and in the record
    _, refused = _place(pj_phone, f"sip:+14155552051@{extra.sip_domain}")
    assert refused["state"] == "DISCONNECTED" and refused["code"] == 503, refused
    assert "(R20)" in refused["reason"], refused
    record = _record(api, refused["sip_call_id"])
    assert (record["rule_id"], record["sip_code"], record["disposition"]) == ("R20", 503, "rejected"), record
    assert _confirmed(api, grasshopper) == first, "a refused attempt disturbed the calls already up"

    # the PSTN ends one call: its slot goes to the next caller
    freed = sorted(first)[0]
    api.pstn_hang_up(freed)
    assert _until(lambda: freed not in _confirmed(api, grasshopper), CALL_TIMEOUT, pump)
    cid, admitted = _place(pj_phone, f"sip:+14155552052@{extra.sip_domain}")
    assert admitted["state"] == "CONFIRMED", admitted
    assert len(_confirmed(api, grasshopper)) == GRASSHOPPER_CAP

    _hang_up(pj_phone, cid)
    _end_all_pstn_calls(api, first)
    result = fifty.wait(30)
    assert result.ok, result.describe()
    byes = _received(result.messages, "BYE")
    assert len(byes) >= GRASSHOPPER_CAP, "every held call ends with the PSTN's BYE through the gateway"
    assert _record(api, freed)["disposition"] == "answered"


def test_a_forked_call_holds_one_slot_while_ringing_and_after_the_other_branch_is_cancelled(
    gateway: GatewayProcess,
    api: VoiplabApi,
    grasshopper: int,
    busy_phone: Any,
    phone_process: Callable[..., Any],
    sipp_binary: str,
    sipp_work: Path,
    background: Callable[[SippRun, Path, str], SippBackground],
) -> None:
    phone = busy_phone
    bulk = api.provision_line(grasshopper, "201", locate=False)
    caller = api.provision_line(grasshopper, "202", locate=False)
    callee = api.provision_line(grasshopper, "203", locate=False)
    desk = phone_process(callee.sip_account(gateway.sip_address), name="desk", answer="none")
    mobile = phone_process(callee.sip_account(gateway.sip_address), name="mobile", answer="none")
    assert desk.expect(REG_TIMEOUT, event="reg")["code"] == 200
    assert mobile.expect(REG_TIMEOUT, event="reg")["code"] == 200
    phone.add_account(caller.sip_account(gateway.sip_address))
    assert (reg := phone.wait_event(REG_TIMEOUT, event="reg")) and reg["code"] == 200, reg
    pump = _pump(phone)

    held = GRASSHOPPER_CAP - 2
    bulk_calls = background(_hold_run(gateway, bulk, HOLDING, calls=held), sipp_work, "held")
    assert _until(lambda: len(_confirmed(api, grasshopper)) == held, 20, pump), api.calls(grasshopper)
    first = _confirmed(api, grasshopper)

    # one call, two ringing branches
    fork_cid = phone.call(callee.uri())
    at_desk = desk.expect(CALL_TIMEOUT, event="incoming")
    mobile.expect(CALL_TIMEOUT, event="incoming")
    live = api.calls(grasshopper)
    assert len(live) == held + 1, f"the forked call must be one live call: {live}"

    # one slot left, not none: the fork counted once
    pstn_cid, last = _place(phone, f"sip:+14155552061@{caller.sip_domain}")
    assert last["state"] == "CONFIRMED", f"the fork took two slots: {last}"
    _, over = _place(phone, f"sip:+14155552062@{caller.sip_domain}")
    assert (over["state"], over["code"]) == ("DISCONNECTED", 503) and "(R20)" in over["reason"], over

    # the desk answers; the mobile's branch is CANCELled and must not give the slot back
    desk.send(cmd="answer", call=at_desk["call"], code=200)
    assert desk.expect(CALL_TIMEOUT, event="call_state", state="CONFIRMED")
    mobile_end = mobile.expect(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    assert mobile_end["code"] == 487, mobile_end
    assert phone.wait_event(CALL_TIMEOUT, event="call_state", call=fork_cid, state="CONFIRMED")
    _, still_over = _place(phone, f"sip:+14155552063@{caller.sip_domain}")
    assert (still_over["state"], still_over["code"]) == ("DISCONNECTED", 503), \
        f"the cancelled branch released the fork's slot: {still_over}"

    # hanging up the forked call releases its one slot
    _hang_up(phone, fork_cid)
    assert _until(lambda: len(api.calls(grasshopper)) == GRASSHOPPER_CAP - 1, CALL_TIMEOUT, pump)
    again_cid, again = _place(phone, f"sip:+14155552064@{caller.sip_domain}")
    assert again["state"] == "CONFIRMED", again
    fork_record = _record(api, at_desk["sip_call_id"])
    assert fork_record["disposition"] == "answered" and fork_record["call_type"] == "on-net", fork_record

    for cid in (pstn_cid, again_cid):
        _hang_up(phone, cid)
    _end_all_pstn_calls(api, first)
    result = bulk_calls.wait(30)
    assert result.ok, result.describe()


# --- duration caps (R20) with --time-scale ---------------------------------------------------------
@pytest.fixture
def scaled(gateway_factory: Callable[..., GatewayProcess]) -> Iterator[tuple[GatewayProcess, VoiplabApi]]:
    """A gateway whose service clock runs 3600 times faster than the wall clock (protocol timers,
    i.e. transactions, registrations, nonces, session timers and the built-in peers, keep real time)."""
    gw = gateway_factory(time_scale=TIME_SCALE)
    client = VoiplabApi(gw.api_url, gw.spec.token)
    yield gw, client
    client.close()


def _registered_uas(gw: GatewayProcess, line: ProvisionedLine, workdir: Path, media: dict[str, str],
                    start: Callable[[SippRun, Path, str], SippBackground]) -> SippBackground:
    """SIPp registers `line` from a port, then answers calls on that same port."""
    port = free_port()
    register = SippRun(scenario("peers_register_auth.xml"), gw.sip_address, local_port=port,
                       service=line.sip_username, auth_user=line.sip_username, auth_password=line.sip_password,
                       auth_uri=line.sip_domain, keys={"domain": line.sip_domain, "expires": "7200"},
                       timeout_s=10)
    registered = run_sipp(register, workdir, "register")
    assert registered.ok, registered.describe()
    uas = SippRun(scenario("policy_uas_answer.xml"), None, local_port=port, keys=dict(media), timeout_s=30)
    return start(uas, workdir, "uas")


def _cap_reason(bye: str, cap: str) -> str:
    """The Reason of a BYE the gateway sent at a duration cap: SIP cause, text naming R20 and the cap."""
    reason = _reason(bye)
    assert re.fullmatch(r'SIP;cause=\d{3};text="[^"]*\(R20\)"', reason), f"no R20 Reason header:\n{bye}"
    assert cap in reason, reason
    return reason


def _capped_record(api: VoiplabApi, account: int, hours: float) -> dict[str, Any]:
    """The answered call's record: ended by R20 at `hours` simulated hours (not earlier, not by
    the 12 h dialog timeout)."""
    rows = wait_for(lambda: api.cdrs_where(account_id=account, disposition="answered"), bool, 5.0,
                    "the answered call's record")
    assert len(rows) == 1, rows
    record = rows[0]
    assert record["rule_id"] == "R20" and "(R20)" in (record["reason"] or ""), record
    assert hours * HOUR <= record["duration_s"] + 1 < (hours + 2) * HOUR, record
    return record


def test_voice_call_is_cut_at_six_hours_with_a_bye_to_both_legs(
    scaled: tuple[GatewayProcess, VoiplabApi], pj_phone: Any, sipp_binary: str, sipp_work: Path,
    background: Callable[[SippRun, Path, str], SippBackground],
) -> None:
    gw, api = scaled
    account = api.create_account(plan="grasshopper")
    caller, callee = (api.provision_line(account, ext, locate=False) for ext in ("201", "202"))
    pj_phone.add_account(caller.sip_account(gw.sip_address, register=False))

    uas = _registered_uas(gw, callee, sipp_work, AUDIO, background)
    cid, answered = _place(pj_phone, callee.uri())
    assert answered["state"] == "CONFIRMED", answered
    ended = pj_phone.wait_event(20, event="call_state", call=cid, state="DISCONNECTED")
    assert ended is not None, "the gateway never ended the call"
    callee_side = uas.wait(10)
    assert callee_side.ok, callee_side.describe()

    caller_byes = [m for d, m in sip_messages(pj_phone.sip_log()) if d == "RX" and m.startswith("BYE ")]
    assert caller_byes, "the caller's phone got no BYE"
    callee_byes = _received(callee_side.messages, "BYE")
    assert callee_byes, f"the callee got no BYE:\n{callee_side.describe()}"
    for bye in (caller_byes[0], callee_byes[0]):
        _cap_reason(bye, "6 h")
    record = _capped_record(api, account, 6)
    assert (record["call_id"], record["call_type"]) == (answered["sip_call_id"], "on-net"), record


def test_t38_fax_call_is_cut_at_three_hours_with_a_bye_to_both_legs(
    scaled: tuple[GatewayProcess, VoiplabApi], sipp_binary: str, sipp_work: Path,
    background: Callable[[SippRun, Path, str], SippBackground],
) -> None:
    gw, api = scaled
    account = api.create_account(plan="grasshopper")
    sender, fax = (api.provision_line(account, ext, locate=False) for ext in ("201", "202"))

    uas = _registered_uas(gw, fax, sipp_work, T38, background)
    uac = background(_hold_run(gw, sender, fax.extension, media=T38, timeout_s=30), sipp_work, "uac")
    caller_side: SippResult = uac.wait(40)
    callee_side: SippResult = uas.wait(10)
    assert caller_side.ok, caller_side.describe()
    assert callee_side.ok, callee_side.describe()

    for side in (caller_side, callee_side):
        byes = _received(side.messages, "BYE")
        assert byes, f"no BYE reached this leg:\n{side.describe()}"
        assert "Fax" in _cap_reason(byes[0], "3 h")  # the fax cap, not the voice one
    record = _capped_record(api, account, 3)
    assert record["call_type"] == "on-net", record


def test_pjsua2_call_to_the_pstn_is_cut_at_six_hours_with_r20(
    scaled: tuple[GatewayProcess, VoiplabApi], pj_phone: Any,
) -> None:
    """pjsua2 offers an RFC 4028 session timer (1800 s, refreshed on its real clock) and the trunk
    holds the call as long as the caller likes: only the 6 h cap may end it."""
    gw, api = scaled
    account = api.create_account(plan="grasshopper")
    caller = api.provision_line(account, "201", locate=False)
    pj_phone.add_account(caller.sip_account(gw.sip_address, register=False))

    cid, answered = _place(pj_phone, f"sip:{HOLDING}@{caller.sip_domain}")
    assert answered["state"] == "CONFIRMED", answered
    ended = pj_phone.wait_event(20, event="call_state", call=cid, state="DISCONNECTED")
    assert ended is not None, "the gateway never ended the call"
    byes = [m for d, m in sip_messages(pj_phone.sip_log()) if d == "RX" and m.startswith("BYE ")]
    assert byes, "the phone got no BYE"
    _cap_reason(byes[-1], "6 h")

    trunk = wait_for(lambda: [c for c in api.pstn_calls(HOLDING) if c["call_id"] == answered["sip_call_id"]],
                     lambda cs: bool(cs) and cs[0]["state"] == "ended", 5.0, "the PSTN leg ended")
    assert trunk[0]["ended_by"] == "bye", f"the PSTN leg was not sent a BYE: {trunk}"
    record = _capped_record(api, account, 6)
    assert (record["call_id"], record["call_type"]) == (answered["sip_call_id"], "domestic"), record

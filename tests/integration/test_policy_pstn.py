"""Calls to the simulated PSTN through the gateway (#5), with real peers: what the trunk does, what
the policy refuses, what the record says.

- The trunk: answers with SDP and an RTP echo (pjsua2 hears itself: packets both ways), a busy
  number gives 486 and a busy record, and a rule set through the lab API decides the next call.
- Fraud guards: international refused until the R24 deposit is recorded, a blocked prefix (R25)
  refused until the account's allow-list lifts it, premium (R28) refused; the rule id is in the
  SIP reason phrase and in the call record.
- Rating: billable seconds rounded up in 6 s steps with an 18 s minimum (R24), seen in `/cdrs`,
  `/cdrs.csv` and the usage summary; `--time-scale 10` makes a 61 s call take six seconds.
- Flood guard (R27): a SIPp dialler trips it, the ban shows in `/fraud/bans` and refuses the
  line's next call, and clearing it admits the next one at once; an emergency call passes the ban.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.peers.api import ProvisionedLine, VoiplabApi, wait_for
from tests.peers.gateway import GatewayProcess
from tests.peers.sipp import SippBackground, SippRun, run_sipp, scenario

pytestmark = pytest.mark.peers

REG_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
AUDIO = {"media_type": "audio", "media_proto": "RTP/AVP 0", "media_attr": "rtpmap:0 PCMU/8000"}
ANSWERS = "+14155550100"  # simulated PSTN default table: …0100 answers
BUSY = "+14155550486"  # …0486 busy
UK_LANDLINE = "+442071234567"  # international for a US account (R24 deposit on Grasshopper)
CUBA = "+5372345678"  # a blocked prefix on every plan (+53, R25)
US_PREMIUM = "+19005551234"  # +1900 information services (R28)


# --- helpers -----------------------------------------------------------------------------------

def _place(phone: Any, uri: str, timeout: float = CALL_TIMEOUT) -> tuple[int, dict[str, Any]]:
    """pjsua2 calls `uri`: (pjsua call id, the CONFIRMED or DISCONNECTED event that settled it)."""
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


def _ended(phone: Any, cid: int, since: int, timeout: float = CALL_TIMEOUT) -> dict[str, Any] | None:
    """The DISCONNECTED event of call `cid` among events from index `since` on."""
    found: list[dict[str, Any]] = []

    def hit() -> bool:
        found[:] = [e for e in phone.events[since:]
                    if e.get("call") == cid and e.get("state") == "DISCONNECTED"]
        return bool(found)

    phone.run_until(hit, timeout)
    return found[0] if found else None


def _hang_up(phone: Any, cid: int) -> None:
    seen = len(phone.events)
    phone.hangup(cid)
    assert _ended(phone, cid, seen) is not None, f"call {cid} did not end"


def _refused(phone: Any, uri: str) -> dict[str, Any]:
    _, event = _place(phone, uri)
    assert event["state"] == "DISCONNECTED", f"{uri} was admitted: {event}"
    return event


def _record(api: VoiplabApi, call_id: str) -> dict[str, Any]:
    """The one call record of `call_id` (written off the SIP path: polled)."""
    rows = wait_for(lambda: api.cdrs_where(call_id=call_id), bool, 5.0, f"call record of {call_id}")
    assert len(rows) == 1, rows
    return rows[0]


def _refusal(phone: Any, api: VoiplabApi, uri: str, status: int, rule: str) -> dict[str, Any]:
    """`uri` is refused with `status`, the rule named in the reason phrase and in the record."""
    event = _refused(phone, uri)
    assert event["code"] == status and f"({rule})" in event["reason"], event
    record = _record(api, event["sip_call_id"])
    assert (record["rule_id"], record["sip_code"], record["disposition"]) == (rule, status, "rejected"), record
    assert record["reason"] == event["reason"], record
    return record


def _answered_and_hung_up(phone: Any, api: VoiplabApi, uri: str, hold: float = 0.3) -> dict[str, Any]:
    cid, event = _place(phone, uri)
    assert event["state"] == "CONFIRMED", event
    phone.run_until(lambda: False, hold)
    _hang_up(phone, cid)
    record = _record(api, event["sip_call_id"])
    assert record["disposition"] == "answered", record
    return record


def _caller(phone: Any, line: ProvisionedLine, gateway: GatewayProcess, *, register: bool = True) -> None:
    phone.add_account(line.sip_account(gateway.sip_address, register=register))
    if register:
        reg = phone.wait_event(REG_TIMEOUT, event="reg")
        assert reg is not None and reg["code"] == 200, f"caller REGISTER: {reg}"


def _uri(number: str, line: ProvisionedLine) -> str:
    return f"sip:{number}@{line.sip_domain}"


def _fresh_number() -> str:
    """A US number of this test's own (PSTN rules are global to the gateway), outside the
    default table's suffixes (…01xx, …04xx, …05xx, …06xx)."""
    return f"+1415555{7000 + secrets.randbelow(3000)}"


@pytest.fixture
def grasshopper_line(api: VoiplabApi) -> ProvisionedLine:
    account = api.create_account(plan="grasshopper")
    return api.provision_line(account, "201", locate=False)


# --- the simulated PSTN ------------------------------------------------------------------------
def test_pstn_answers_and_echoes_rtp_both_ways(
    gateway: GatewayProcess, api: VoiplabApi, line: Callable[..., ProvisionedLine], pj_phone: Any,
) -> None:
    caller = line()
    _caller(pj_phone, caller, gateway)
    cid, event = _place(pj_phone, _uri(ANSWERS, caller))
    assert event["state"] == "CONFIRMED", event
    assert pj_phone.wait_event(CALL_TIMEOUT, event="media", call=cid, active=True)

    call_id = event["sip_call_id"]

    def trunk_side() -> dict[str, Any]:
        return next(c for c in api.pstn_calls(ANSWERS) if c["call_id"] == call_id)

    def phone_received() -> int:
        return int(pj_phone._calls[cid].getStreamStat(0).rtcp.rxStat.pkt)  # private: no stats API yet

    heard = pj_phone.run_until(lambda: phone_received() >= 10 and trunk_side()["rtp"]["echoed"] >= 10, 5.0)
    trunk = trunk_side()
    assert heard, f"no RTP both ways: phone received {phone_received()}, trunk {trunk['rtp']}"
    assert trunk["rtp"]["received"] >= trunk["rtp"]["echoed"] > 0, trunk
    assert (trunk["rule"], trunk["state"]) == ("*0100", "confirmed"), trunk

    _hang_up(pj_phone, cid)
    record = _record(api, call_id)
    assert (record["disposition"], record["call_type"], record["destination"]) == \
        ("answered", "domestic", ANSWERS), record
    assert wait_for(trunk_side, lambda c: c["state"] == "ended", 5.0, "PSTN call ended")["ended_by"] == "bye"


def test_busy_number_gets_486_and_a_busy_record(
    gateway: GatewayProcess, api: VoiplabApi, line: Callable[..., ProvisionedLine], pj_phone: Any,
) -> None:
    caller = line()
    _caller(pj_phone, caller, gateway)
    event = _refused(pj_phone, _uri(BUSY, caller))
    assert event["code"] == 486, event
    record = _record(api, event["sip_call_id"])
    assert (record["disposition"], record["sip_code"], record["rule_id"]) == ("busy", 486, None), record
    (trunk,) = [c for c in api.pstn_calls(BUSY) if c["call_id"] == event["sip_call_id"]]
    assert (trunk["rule"], trunk["status"]) == ("*0486", 486), trunk


def test_a_rule_set_through_the_lab_api_decides_the_next_call(
    gateway: GatewayProcess, api: VoiplabApi, line: Callable[..., ProvisionedLine], pj_phone: Any,
) -> None:
    caller = line()
    number = _fresh_number()
    _caller(pj_phone, caller, gateway)
    _answered_and_hung_up(pj_phone, api, _uri(number, caller))  # no rule: the fallback answers
    try:
        api.set_pstn_rule(number, {"action": "reject", "status": 603}, note="policy test")
        declined = _refused(pj_phone, _uri(number, caller))
        assert declined["code"] == 603, declined
        assert _record(api, declined["sip_call_id"])["sip_code"] == 603

        api.set_pstn_rule(number, {"action": "answer", "hang_up_after": 0.5})  # replaces the rule
        seen = len(pj_phone.events)
        cid, answered = _place(pj_phone, _uri(number, caller))
        assert answered["state"] == "CONFIRMED", answered
        hung_up = _ended(pj_phone, cid, seen)
        assert hung_up is not None, "the PSTN did not hang up as its rule says"
    finally:
        api.delete_pstn_rule(number)
    first, declined_on_trunk, hung_up_by_trunk = wait_for(
        lambda: api.pstn_calls(number), lambda cs: len(cs) == 3 and cs[-1]["state"] == "ended", 5.0,
        "three PSTN calls")
    assert first["rule"] != number and first["status"] == 200, first
    assert (declined_on_trunk["rule"], declined_on_trunk["rule_source"], declined_on_trunk["status"]) == \
        (number, "api", 603), declined_on_trunk
    assert (hung_up_by_trunk["rule"], hung_up_by_trunk["ended_by"]) == (number, "hangup"), hung_up_by_trunk


# --- fraud guards: R24 deposit, R25 blocked prefixes, R28 premium -----------------------------------
def test_international_is_refused_until_the_deposit_then_rated(
    gateway: GatewayProcess, api: VoiplabApi, grasshopper_line: ProvisionedLine, pj_phone: Any,
) -> None:
    caller = grasshopper_line
    _caller(pj_phone, caller, gateway, register=False)
    _refusal(pj_phone, api, _uri(UK_LANDLINE, caller), 403, "R24")

    plan = api.request("get", f"/api/v1/plans/{api.request('get', f'/api/v1/accounts/{caller.account_id}')['plan']}")
    required = int(plan["international"]["deposit_required_usd"])
    assert api.deposit(caller.account_id, required)["deposit_usd"] == required
    record = _answered_and_hung_up(pj_phone, api, _uri(UK_LANDLINE, caller))
    assert (record["call_type"], record["destination"], record["rule_id"]) == \
        ("international", UK_LANDLINE, None), record
    rate = Decimal(record["rate_per_min"])
    assert rate > 0 and Decimal(record["charge"]) == (rate * record["billable_s"] / 60).quantize(Decimal("0.0001"))


def test_blocked_prefix_is_refused_until_the_account_allows_it(
    gateway: GatewayProcess, api: VoiplabApi, grasshopper_line: ProvisionedLine, pj_phone: Any,
) -> None:
    caller = grasshopper_line
    _caller(pj_phone, caller, gateway, register=False)
    api.deposit(caller.account_id, 500)  # so that only R25 stands in the way
    _refusal(pj_phone, api, _uri(CUBA, caller), 403, "R25")
    api.set_allowed_prefixes(caller.account_id, [CUBA[:3]])
    record = _answered_and_hung_up(pj_phone, api, _uri(CUBA, caller))
    assert record["call_type"] == "international", record


def test_premium_number_is_refused_with_r28(
    gateway: GatewayProcess, api: VoiplabApi, grasshopper_line: ProvisionedLine, pj_phone: Any,
) -> None:
    caller = grasshopper_line
    _caller(pj_phone, caller, gateway, register=False)
    _refusal(pj_phone, api, _uri(US_PREMIUM, caller), 403, "R28")
    _answered_and_hung_up(pj_phone, api, _uri(ANSWERS, caller))  # the line itself is fine


def test_refused_pstn_attempts_keep_their_call_type_and_destination(
    gateway: GatewayProcess, api: VoiplabApi, grasshopper_line: ProvisionedLine, pj_phone: Any,
) -> None:
    caller = grasshopper_line
    _caller(pj_phone, caller, gateway, register=False)
    expected = {UK_LANDLINE: "international", US_PREMIUM: "premium"}
    for number, kind in expected.items():
        record = _record(api, _refused(pj_phone, _uri(number, caller))["sip_call_id"])
        assert (record["call_type"], record["destination"], record["plan"]) == (kind, number, "grasshopper"), \
            record


# --- R24 rounding, with a fast clock ------------------------------------------------------------------
SCALE_FOR_ROUNDING = 10.0  # simulated seconds per real second: a 61 s call takes 6.1 s


@pytest.fixture
def fast_clock(gateway_factory: Callable[..., GatewayProcess]) -> Iterator[tuple[GatewayProcess, VoiplabApi]]:
    gw = gateway_factory(time_scale=SCALE_FOR_ROUNDING)
    client = VoiplabApi(gw.api_url, gw.spec.token)
    yield gw, client
    client.close()


def _timed_call(gateway: GatewayProcess, caller: ProvisionedLine, number: str, simulated_s: float) -> SippRun:
    """One SIPp call to `number` that SIPp hangs up after `simulated_s` on the gateway's clock.

    The pause is real time, so the recorded duration is the pause times the scale plus the
    loopback round trip: never shorter, and the bins R24 rounds into are 5 s (0.5 s real) wide.
    """
    hold_ms = round(simulated_s / SCALE_FOR_ROUNDING * 1000)
    return SippRun(scenario("peers_uac_auth_call.xml"), gateway.sip_address, service=number,
                   auth_user=caller.sip_username, auth_password=caller.sip_password,
                   auth_uri=f"{number}@{caller.sip_domain}",
                   keys={"caller": caller.sip_username, "domain": caller.sip_domain}, hold_ms=hold_ms,
                   timeout_s=30)


def test_billable_seconds_round_up_in_six_second_steps_with_an_eighteen_second_minimum(
    fast_clock: tuple[GatewayProcess, VoiplabApi], sipp_binary: str, tmp_path: Path,
) -> None:
    gw, api = fast_clock
    account = api.create_account(plan="grasshopper")
    caller = api.provision_line(account, "201", locate=False)
    acceptance = {1: 18, 19: 24, 61: 66}  # issue #5: 1 s → 18 s, 19 s → 24 s, 61 s → 66 s (R24)
    numbers = {seconds: f"+1415555{7000 + seconds}" for seconds in acceptance}  # the PSTN answers them

    calls = [SippBackground(_timed_call(gw, caller, number, seconds), tmp_path, f"call-{seconds}s")
             for seconds, number in numbers.items()]
    for result in [c.wait(40) for c in calls]:
        assert result.ok, result.describe()

    rows = wait_for(lambda: api.cdrs_where(account_id=account), lambda rs: len(rs) == len(acceptance), 5.0,
                    "three call records")
    by_destination = {r["destination"]: r for r in rows}
    for seconds, billable in acceptance.items():
        record = by_destination[numbers[seconds]]
        assert record["disposition"] == "answered" and record["call_type"] == "domestic", record
        assert seconds - 0.5 <= record["duration_s"] < billable, record  # simulated seconds
        assert record["billable_s"] == billable, record

    exported = list(csv.DictReader(io.StringIO(api.cdrs_csv(account_id=account))))
    assert {r["call_id"]: int(r["billable_s"]) for r in exported} == {r["call_id"]: r["billable_s"] for r in rows}
    usage = api.usage(account)
    assert usage["by_call_type"]["domestic"]["billable_s"] == sum(acceptance.values()), usage


# --- flood guard (R27) --------------------------------------------------------------------------------
FLOOD_PER_LINE = 5


def _flood_gateway(factory: Callable[..., GatewayProcess], monkeypatch: pytest.MonkeyPatch
                   ) -> tuple[GatewayProcess, VoiplabApi]:
    """A gateway whose R27 guard allows `FLOOD_PER_LINE` attempts per line in its window (10 s)."""
    monkeypatch.setenv("VOIPLAB_FLOOD_PER_LINE", str(FLOOD_PER_LINE))
    gw = factory()
    return gw, VoiplabApi(gw.api_url, gw.spec.token)


def _dial(gw: GatewayProcess, caller: ProvisionedLine, number: str, calls: int, workdir: Path) -> str:
    """SIPp places `calls` short calls as fast as it can; returns its message trace."""
    run = SippRun(scenario("policy_uac_flood.xml"), gw.sip_address, calls=calls, service=number,
                  auth_user=caller.sip_username, auth_password=caller.sip_password,
                  auth_uri=f"{number}@{caller.sip_domain}",
                  keys={"caller": caller.sip_username, "domain": caller.sip_domain, **AUDIO},
                  timeout_s=20, extra=("-r", "50", "-l", "1"))
    result = run_sipp(run, workdir, "dialler")
    assert result.ok, result.describe()
    return result.messages


def _tripped(api: VoiplabApi, gw: GatewayProcess, caller: ProvisionedLine, workdir: Path) -> dict[str, Any]:
    """Trip the guard with a dialler; check what it refused and the ban it left. Returns the ban."""
    attempts = FLOOD_PER_LINE + 3
    _dial(gw, caller, ANSWERS, attempts, workdir)
    rows = wait_for(lambda: api.cdrs_where(account_id=caller.account_id),
                    lambda rs: len(rs) == attempts, 5.0, f"{attempts} call records")
    answered = [r for r in rows if r["disposition"] == "answered"]
    refused = [r for r in rows if r["rule_id"] == "R27"]
    assert (len(answered), len(refused)) == (FLOOD_PER_LINE, attempts - FLOOD_PER_LINE), rows
    assert all(r["sip_code"] == 503 and "(R27)" in r["reason"] for r in refused), refused
    bans = [b for b in api.fraud_bans() if caller.sip_username in b["key"]]
    assert len(bans) == 1 and bans[0]["kind"] == "line", api.fraud_bans()
    return bans[0]


@pytest.fixture
def flood(gateway_factory: Callable[..., GatewayProcess], monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[GatewayProcess, VoiplabApi]]:
    gw, client = _flood_gateway(gateway_factory, monkeypatch)
    yield gw, client
    client.close()


def test_flood_guard_trips_bans_the_line_and_clearing_the_ban_admits_it_again(
    flood: tuple[GatewayProcess, VoiplabApi], pj_phone: Any, sipp_binary: str, tmp_path: Path,
) -> None:
    gw, api = flood
    account = api.create_account()
    caller = api.provision_line(account, "201")
    ban = _tripped(api, gw, caller, tmp_path)

    _caller(pj_phone, caller, gw, register=False)
    banned = _refused(pj_phone, _uri(_fresh_number(), caller))  # another number: the line is banned
    assert banned["code"] == 503 and "(R27)" in banned["reason"], banned
    assert _record(api, banned["sip_call_id"])["rule_id"] == "R27"

    api.clear_fraud_ban(ban["key"])
    assert all(b["key"] != ban["key"] for b in api.fraud_bans())
    _answered_and_hung_up(pj_phone, api, _uri(_fresh_number(), caller))  # at once, inside the window


def test_an_emergency_call_passes_the_flood_ban(
    flood: tuple[GatewayProcess, VoiplabApi], pj_phone: Any, sipp_binary: str, tmp_path: Path,
) -> None:
    gw, api = flood
    account = api.create_account()  # connect: the plan with emergency calling (R10)
    caller = api.provision_line(account, "201")
    _tripped(api, gw, caller, tmp_path)
    _caller(pj_phone, caller, gw, register=False)
    banned = _refused(pj_phone, _uri(_fresh_number(), caller))
    assert banned["code"] == 503 and "(R27)" in banned["reason"], banned

    cid, emergency = _place(pj_phone, _uri("911", caller))
    assert emergency["state"] == "CONFIRMED", f"911 refused under an R27 ban: {emergency}"
    _hang_up(pj_phone, cid)

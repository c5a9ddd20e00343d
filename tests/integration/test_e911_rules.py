"""Only R10 and R11 may stop an emergency call (#4), seen from a real pjsua2 phone.

- Limits do not: an ATA port carries one call, so a second ordinary call on it is refused while
  the first is up, yet 911 connects alongside (verdict pass); a line banned by the flood guard
  (R27, on a gateway started with a flood limit of one attempt per line) has its ordinary calls
  refused, yet 911 connects (verdict pass).
- R10: a Grasshopper device dialling 911 is refused with a reason naming R10, never routed
  elsewhere (no PSAP record), and the attempt is recorded.
- R11: a suspended account, a suspended device, a power or internet outage at the device's site
  and the customer's network blocking the platform make 911 fail with a clear status and a
  reason naming R11; once the account is resumed or the outage ended, 911 connects again.

Statuses follow gateway/emergency.py's contract: 403 when the service is deactivated, 503 during
an outage, 403 for R10.

A phone here places at most four calls: pjsua reuses call ids after four, and
tests/peers/pjphone.py then replaces the old `pj.Call` object, whose destructor hangs up the new
call of the same id (seen as an INVITE CANCELled at once, no final answer to the test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.peers.api import E911Api, ProvisionedLine, wait_for
from tests.peers.gateway import GatewayProcess

pytestmark = pytest.mark.peers

REG_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
RECORD_TIMEOUT = 10.0
BUSY_NUMBER = "+15125550486"  # the simulated PSTN's default rule *0486: 486 Busy Here
ANSWER_NUMBER = "+15125550100"  # default rule *0100: answer


@pytest.fixture
def e911(gateway: GatewayProcess) -> Iterator[E911Api]:
    client = E911Api(gateway.api_url, gateway.spec.token)
    yield client
    client.close()


def _registered(phone: Any, who: ProvisionedLine, gateway: GatewayProcess) -> None:
    phone.add_account(who.sip_account(gateway.sip_address))
    reg = phone.wait_event(REG_TIMEOUT, event="reg")
    assert reg is not None and reg["code"] == 200, f"REGISTER: {reg}"


def _dial(phone: Any, uri: str) -> dict[str, Any]:
    """Call `uri`; return the first CONFIRMED or DISCONNECTED event of that call."""
    since = len(phone.events)
    cid = phone.call(uri)

    def final() -> dict[str, Any] | None:
        return next((e for e in phone.events[since:] if e.get("event") == "call_state"
                     and e.get("call") == cid and e.get("state") in ("CONFIRMED", "DISCONNECTED")), None)

    phone.run_until(lambda: final() is not None, CALL_TIMEOUT)
    outcome = final()
    assert outcome is not None, f"no answer to the call to {uri}: {phone.events[since:]}"
    return outcome


def _hang_up(phone: Any, call: dict[str, Any]) -> None:
    since = len(phone.events)
    phone.hangup(call["call"])
    assert phone.run_until(lambda: any(e.get("event") == "call_state" and e.get("call") == call["call"]
                                       and e.get("state") == "DISCONNECTED" for e in phone.events[since:]),
                           CALL_TIMEOUT), "BYE not answered"


def _emergency_connects(e911: E911Api, phone: Any, who: ProvisionedLine, dialled: str = "911") -> dict[str, Any]:
    """Dial an emergency number, see it answered by the PSAP with verdict pass, hang up."""
    call = _dial(phone, f"sip:{dialled}@{who.sip_domain}")
    assert call["state"] == "CONFIRMED", f"{dialled} did not connect: {call}"
    psap = wait_for(lambda: e911.psap_call(call["sip_call_id"]), lambda c: c is not None, RECORD_TIMEOUT,
                    "PSAP record")
    assert psap is not None
    assert (psap["role"], psap["verdict"]) == ("emergency", "pass"), psap["checks"]
    _hang_up(phone, call)
    return call


def _refused_emergency(e911: E911Api, phone: Any, who: ProvisionedLine, rule: str) -> tuple[dict[str, Any],
                                                                                              dict[str, Any]]:
    """Dial 911, see it refused naming `rule`, never reaching the PSAP; the call and its record."""
    call = _dial(phone, f"sip:911@{who.sip_domain}")
    assert call["state"] == "DISCONNECTED" and call["code"] >= 400, f"911 was not refused: {call}"
    assert f"({rule})" in call["reason"], f"the reason does not name {rule}: {call}"
    return _refused_emergency_record(e911, call, rule)


# --- limits do not stop an emergency call -------------------------------------------------------

def test_ata_port_at_its_one_call_cap_still_connects_911(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    ata = e911.provision_e911_line(account, "201", site["id"], hardware_profile="grandstream-ht802")
    _registered(pj_phone, ata, gateway)

    first = _dial(pj_phone, f"sip:{ANSWER_NUMBER}@{ata.sip_domain}")
    assert first["state"] == "CONFIRMED", first
    second = _dial(pj_phone, f"sip:{ANSWER_NUMBER}@{ata.sip_domain}")
    assert second["state"] == "DISCONNECTED" and second["code"] == 486, f"the cap did not apply: {second}"
    assert first["call"] in pj_phone.active_calls(), "the first call ended: the cap was not reached"

    _emergency_connects(e911, pj_phone, ata)
    _hang_up(pj_phone, first)


def test_flood_banned_line_still_connects_911(
    gateway_factory: Callable[..., GatewayProcess], monkeypatch: pytest.MonkeyPatch, pj_phone: Any
) -> None:
    monkeypatch.setenv("VOIPLAB_FLOOD_PER_LINE", "1")  # read by `voiplab serve` (gateway/settings.py)
    strict = gateway_factory()
    e911 = E911Api(strict.api_url, strict.spec.token)
    try:
        account = e911.create_account(plan="connect", region="US")
        site = e911.create_site(account, "US")
        who = e911.provision_e911_line(account, "201", site["id"])
        _registered(pj_phone, who, strict)

        admitted = _dial(pj_phone, f"sip:{BUSY_NUMBER}@{who.sip_domain}")
        assert admitted["code"] == 486, f"the first ordinary attempt should reach the PSTN: {admitted}"
        flooded = _dial(pj_phone, f"sip:{BUSY_NUMBER}@{who.sip_domain}")
        assert flooded["code"] == 503 and "(R27)" in flooded["reason"], flooded
        assert f"src:{who.sip_username}" in {b["key"] for b in e911.fraud_bans()}
        banned = _dial(pj_phone, f"sip:{ANSWER_NUMBER}@{who.sip_domain}")
        assert banned["code"] == 503 and "(R27)" in banned["reason"], banned

        # the fourth call of this phone: pjsua2 reuses call ids after four (see the module notes)
        _emergency_connects(e911, pj_phone, who, "911")
    finally:
        e911.close()


# --- R10 ------------------------------------------------------------------------------------------

def test_grasshopper_device_dialling_911_is_refused_naming_r10(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="grasshopper", region="US")
    who = e911.provision_e911_line(account, "201", None, acknowledge=False)  # no location needed
    _registered(pj_phone, who, gateway)

    call, record = _refused_emergency(e911, pj_phone, who, "R10")
    assert call["code"] == 403, call
    assert record["code"] == "plan_without_emergency_calling", record
    # the attempt is in the call records too, with its rule
    cdr = wait_for(lambda: e911.cdrs_where(call_id=call["sip_call_id"]), lambda rows: len(rows) == 1,
                   RECORD_TIMEOUT, "call record of the refused attempt")[0]
    assert (cdr["rule_id"], cdr["sip_code"]) == ("R10", 403), cdr
    [audited] = e911.audit(entity="emergency_call", entity_id=record["id"])
    assert (audited["action"], audited["detail"]["rule_id"]) == ("emergency_call.refused", "R10"), audited


# --- R11 ------------------------------------------------------------------------------------------

def test_suspended_account_911_fails_per_r11_until_resumed(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    who = e911.provision_e911_line(account, "201", site["id"])
    _registered(pj_phone, who, gateway)

    assert e911.suspend_account(account)["status"] == "suspended"
    refused = wait_for(lambda: _refused_or_none(e911, pj_phone, who), lambda r: r is not None,
                       RECORD_TIMEOUT, "911 refused after the suspension")  # the snapshot follows
    assert refused is not None
    call, record = refused
    assert call["code"] == 403 and record["code"] == "account_deactivated", record

    assert e911.resume_account(account)["status"] == "active"
    wait_for(lambda: _dial(pj_phone, f"sip:911@{who.sip_domain}"), _answered_then_hung_up(pj_phone),
             RECORD_TIMEOUT, "911 connecting again after resume")


def test_suspended_device_911_fails_per_r11(gateway: GatewayProcess, e911: E911Api, pj_phone: Any) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    who = e911.provision_e911_line(account, "201", site["id"])
    _registered(pj_phone, who, gateway)

    e911.request("post", f"/api/v1/devices/{who.device_id}/suspend")
    refused = wait_for(lambda: _refused_or_none(e911, pj_phone, who), lambda r: r is not None,
                       RECORD_TIMEOUT, "911 refused after the device was suspended")
    assert refused is not None
    call, record = refused
    assert call["code"] == 403 and record["code"] == "device_deactivated", record


@pytest.mark.parametrize(("kind", "code", "words"), [
    ("power", "site_power_outage", "power outage"),
    ("internet", "site_internet_outage", "internet outage"),
    ("network_blocked", "site_network_blocked", "network blocks"),  # R11: the customer's own network
])
def test_site_outage_911_fails_per_r11_until_it_ends(
    kind: str, code: str, words: str, gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    who = e911.provision_e911_line(account, "201", site["id"])
    _registered(pj_phone, who, gateway)

    outage = e911.start_outage(site["id"], kind)
    assert (outage["kind"], outage["active"]) == (kind, True), outage
    refused = wait_for(lambda: _refused_or_none(e911, pj_phone, who), lambda r: r is not None,
                       RECORD_TIMEOUT, f"911 refused during the {kind} outage")
    assert refused is not None
    call, record = refused
    assert call["code"] == 503 and record["code"] == code, record
    assert words in call["reason"].lower(), call

    assert e911.end_outage(outage["id"])["active"] is False
    wait_for(lambda: _dial(pj_phone, f"sip:911@{who.sip_domain}"), _answered_then_hung_up(pj_phone),
             RECORD_TIMEOUT, "911 connecting again after the outage")


def _refused_or_none(e911: E911Api, phone: Any, who: ProvisionedLine) -> tuple[dict[str, Any],
                                                                             dict[str, Any]] | None:
    """The refusal per R11, or None while the gateway's snapshot still lets 911 through (the call
    that got through is hung up). The API change reaches the gateway asynchronously."""
    call = _dial(phone, f"sip:911@{who.sip_domain}")
    if call["state"] == "CONFIRMED":
        _hang_up(phone, call)
        return None
    assert call["state"] == "DISCONNECTED" and "(R11)" in call["reason"], f"not refused per R11: {call}"
    return _refused_emergency_record(e911, call, "R11")


def _refused_emergency_record(e911: E911Api, call: dict[str, Any], rule: str) -> tuple[dict[str, Any],
                                                                                    dict[str, Any]]:
    call_id = call["sip_call_id"]
    [record] = wait_for(lambda: e911.emergency_calls(call_id=call_id), lambda rows: len(rows) == 1,
                        RECORD_TIMEOUT, f"the refused call {call_id} recorded")
    assert (record["route_kind"], record["rule_id"], record["sip_status"], record["reason"]) == (
        "refuse", rule, call["code"], call["reason"]), record
    assert record["pidf"] is None and not record["with_location"], record
    assert e911.psap_call(call_id) is None, "a refused emergency call reached the PSAP"
    return call, record


def _answered_then_hung_up(phone: Any) -> Callable[[dict[str, Any]], bool]:
    def check(call: dict[str, Any]) -> bool:
        if call["state"] != "CONFIRMED":
            return False
        _hang_up(phone, call)
        return True

    return check

"""Emergency calls from a real pjsua2 phone through `voiplab serve` to its PSAP simulator (#4).

What a compliance tester must see call by call, checked against what *we* provisioned through the
API (never against the gateway's own idea of the registered location):

- 911 and 9911 (Kari's Law direct dialling, with and without the outside-line prefix), and
  `urn:service:sos` dialled directly, from an activated US device whose R15 notice was
  acknowledged reach the PSAP with verdict pass; the PIDF-LO the PSAP stored, parsed here with
  lxml, carries every civic element of the location created through the API and nothing else;
  the callback is the location's E.164 number; the call record says an emergency call answered.
- 112 on an EU account (a German address), 999 and 112 on a UK account (a British one) do the same.
- The persisted emergency call record shows the call answered and ended (the gateway sends the
  record again when the call ends).
- 933 reads the registered address and callback back in the 200 OK's text body, and the stored
  record holds the same text.
- A device whose notice was never acknowledged still connects, but to the national emergency call
  centre without location (R15), with the reason recorded.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from tests.peers.api import E911Api, ProvisionedLine, location_civic, pidf_civic, wait_for
from tests.peers.gateway import GatewayProcess
from tests.peers.pjsip_log import sip_messages

pytestmark = pytest.mark.peers

REG_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
RECORD_TIMEOUT = 10.0
PROGRESS_TIMEOUT = 3.0  # the CDR of the same call is there by then


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
    assert phone.run_until(lambda: any(e.get("event") == "call_state" and e.get("state") == "DISCONNECTED"
                                       for e in phone.events[since:]), CALL_TIMEOUT), "BYE not answered"


def _target(dialled: str, who: ProvisionedLine) -> str:
    """What the phone dials: a number at the gateway's domain, or a service URN as a name-addr
    (pjsip drops the To tag of a bare `urn:` To header, so its ACK and BYE would match no dialog)."""
    return f"<{dialled}>" if dialled.startswith("urn:") else f"sip:{dialled}@{who.sip_domain}"


def _connected_emergency_call(e911: E911Api, gateway: GatewayProcess, phone: Any, who: ProvisionedLine,
                              dialled: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register, dial, see the call answered, hang up; the PSAP's record and the gateway's."""
    _registered(phone, who, gateway)
    call = _dial(phone, _target(dialled, who))
    assert call["state"] == "CONFIRMED", f"{dialled} did not connect: {call}"
    _hang_up(phone, call)
    call_id = call["sip_call_id"]
    psap = wait_for(lambda: e911.psap_call(call_id), lambda c: c is not None and c["state"] == "ended",
                    RECORD_TIMEOUT, f"PSAP record of {call_id} ended")
    assert psap is not None
    [record] = wait_for(lambda: e911.emergency_calls(call_id=call_id), lambda rows: len(rows) == 1,
                        RECORD_TIMEOUT, f"one emergency call record for {call_id}")
    return psap, record


def _assert_location_conveyed(psap: dict[str, Any], record: dict[str, Any], site: dict[str, Any]) -> None:
    """Verdict pass, and the PIDF-LO the PSAP received equals the provisioned location."""
    assert (psap["role"], psap["verdict"], psap["failed_checks"]) == ("emergency", "pass", []), psap["checks"]
    assert psap["request_uri"] == "urn:service:sos", psap["request_uri"]
    assert psap["pidf"], "the PSAP stored no PIDF-LO"
    assert pidf_civic(psap["pidf"]) == location_civic(site), "conveyed location differs from the provisioned one"
    assert psap["callback"] == site["callback_number"], psap["callback"]
    # the gateway's record of what it sent is the same document
    assert (record["route_kind"], record["with_location"], record["callback"]) == (
        "psap", True, site["callback_number"]), record
    assert pidf_civic(record["pidf"]) == location_civic(site)


@pytest.mark.parametrize("dialled", ["911", "9911", "urn:service:sos"])
def test_us_device_dials_911_and_psap_gets_the_registered_location(
    dialled: str, gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    assert site["validation_status"] == "valid", site
    who = e911.provision_e911_line(account, "201", site["id"])
    assert e911.device_e911(who.device_id)["location_forwarding"] is True

    psap, record = _connected_emergency_call(e911, gateway, pj_phone, who, dialled)
    _assert_location_conveyed(psap, record, e911.location(site["id"]))
    assert (record["dialled"], record["service_urn"], record["rule_id"]) == (dialled, "urn:service:sos", "R15")
    # the verdict is persisted too, with the same PIDF-LO
    [stored] = wait_for(lambda: [c for c in e911.stored_psap_calls(role="emergency")
                                 if c.get("call_id") == record["call_id"]],
                        lambda rows: len(rows) == 1 and rows[0].get("state") == "ended",
                        RECORD_TIMEOUT, "persisted PSAP verdict")
    assert (stored["verdict"], stored["pidf"]) == ("pass", psap["pidf"]), stored
    # and the call record says an emergency call was answered
    [cdr] = wait_for(lambda: e911.cdrs_where(call_id=record["call_id"]), lambda rows: len(rows) == 1,
                     RECORD_TIMEOUT, "call record of the emergency call")
    assert (cdr["call_type"], cdr["disposition"], cdr["sip_code"]) == ("emergency", "answered", 200), cdr


@pytest.mark.parametrize(("region", "dialled", "country"),
                         [("EU", "112", "DE"), ("UK", "999", "GB"), ("UK", "112", "GB")])
def test_european_emergency_numbers_reach_the_psap_with_location(
    region: str, dialled: str, country: str, gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region=region)
    site = e911.create_site(account, region)
    assert (site["validation_status"], site["country"]) == ("valid", country), site
    who = e911.provision_e911_line(account, "201", site["id"])

    psap, record = _connected_emergency_call(e911, gateway, pj_phone, who, dialled)
    _assert_location_conveyed(psap, record, e911.location(site["id"]))
    assert record["dialled"] == dialled, record


def test_emergency_call_record_shows_the_call_answered_and_ended(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    who = e911.provision_e911_line(account, "201", site["id"])
    _, record = _connected_emergency_call(e911, gateway, pj_phone, who, "911")
    [cdr] = wait_for(lambda: e911.cdrs_where(call_id=record["call_id"]), lambda rows: len(rows) == 1,
                     RECORD_TIMEOUT, "call record of the emergency call")
    assert cdr["answer"] is not None and cdr["end"] is not None, cdr  # the call did connect and end
    [moved_on] = wait_for(lambda: e911.emergency_calls(call_id=record["call_id"]),
                          lambda rows: len(rows) == 1 and rows[0]["ended_at"] is not None, PROGRESS_TIMEOUT,
                          "the emergency call record showing the call ended")
    assert moved_on["answered_at"] is not None and moved_on["sip_status"] == 200, moved_on


def _answer_text(log: str, call_id: str) -> str:
    """The text/plain part of the 200 OK the phone received for `call_id` (pjsip log)."""
    for direction, message in sip_messages(log):
        if direction != "RX" or not message.startswith("SIP/2.0 200"):
            continue
        head, _, _ = message.partition("\n\n")
        if f"Call-ID: {call_id}" not in head and f"i: {call_id}" not in head:
            continue
        parsed = email.parser.Parser(_class=EmailMessage, policy=email.policy.default).parsestr(
            message.split("\n", 1)[1])
        text = parsed.get_body(preferencelist=("plain",))
        assert text is not None, f"200 OK for {call_id} has no text/plain part:\n{message}"
        return str(text.get_content())
    raise AssertionError(f"no 200 OK for {call_id} in the phone's log")


def test_933_reads_back_the_registered_address_and_callback(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.location(e911.create_site(account, "US")["id"])
    who = e911.provision_e911_line(account, "201", site["id"])

    psap, record = _connected_emergency_call(e911, gateway, pj_phone, who, "933")
    assert (psap["role"], psap["verdict"]) == ("test", "pass"), psap["checks"]
    assert (record["is_test"], record["service_urn"]) == (True, "urn:service:test.sos"), record
    text = _answer_text(pj_phone.sip_log(), record["call_id"]).replace("\r\n", "\n")
    assert psap["readback"].replace("\r\n", "\n") == text, "stored read-back differs from the 200 OK's"
    lines = dict(line.split(": ", 1) for line in text.strip().splitlines() if ": " in line)
    assert lines["Callback number"] == site["callback_number"], text
    received = lines["Location received"]
    for element in ("hno", "rd", "sts", "a3", "a1", "pc"):  # the street address a dispatcher reads
        assert site[element] in received, f"{element.upper()} {site[element]!r} not read back: {received!r}"
    assert lines["Differences"] == "none", text
    assert pidf_civic(psap["pidf"]) == location_civic(site)


def test_device_without_acknowledged_notice_reaches_national_centre_without_location(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    who = e911.provision_e911_line(account, "201", site["id"], acknowledge=False)
    status = e911.device_e911(who.device_id)
    assert (status["state"], status["location_forwarding"]) == ("active", False), status

    psap, record = _connected_emergency_call(e911, gateway, pj_phone, who, "911")
    assert (psap["role"], psap["verdict"], psap["pidf"]) == ("national_centre", "pass", None), psap
    no_location = next(c for c in psap["checks"] if c["name"] == "no_location")
    assert no_location["passed"], no_location
    assert (record["route_kind"], record["with_location"], record["rule_id"], record["code"]) == (
        "national_centre", False, "R15", "not_notified"), record
    assert "R15" in record["reason"] and record["pidf"] is None, record

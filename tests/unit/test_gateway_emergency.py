"""Emergency calls through the real SipCore: classified first, R10/R11 only, PIDF-LO to the PSAP (#4)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlmodel import Session

from e911.conveyance import extract_location
from e911.pidf import PidfLo, parse_pidf
from gateway.sip.message import Request, Response
from provisioning.plans import FairUse, PlanCatalog, load_plans
from provisioning.services.account_e911 import suspend_account
from provisioning.services.notices import acknowledge_notice
from provisioning.services.outages import start_outage
from tests.gwharness import (
    DOMAIN,
    PSAP,
    Gateway,
    Phone,
    answer_challenge,
    builtin_routes,
    register,
    request,
)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def conveyed(invite: Request) -> PidfLo:
    """The PIDF-LO an INVITE carries by value (what the PSAP reads)."""
    loc = extract_location(invite.get_all("geolocation"), invite.get("geolocation-routing"),
                           invite.get("content-type"), invite.body)
    return parse_pidf(loc.pidf)


def dial(gw: Gateway, caller: Phone, target: str, call_id: str) -> list[Request | Response]:
    uri = target if ":" in target else f"sip:{target}@{DOMAIN}"
    gw.inject(request("INVITE", uri, caller, to=f"<{uri}>", call_id=call_id, cseq=1, body=SDP,
                      branch=f"z9hG4bKe1{call_id}"), caller.peer)
    challenge = gw.one(caller.peer)
    assert isinstance(challenge, Response) and challenge.status == 407
    auth = answer_challenge(challenge, caller, "INVITE", uri, "proxy-authenticate")
    gw.inject(request("INVITE", uri, caller, to=f"<{uri}>", call_id=call_id, cseq=2, body=SDP,
                      branch=f"z9hG4bKe2{call_id}", extra=[f"Proxy-Authorization: {auth}"]), caller.peer)
    return gw.take(caller.peer)


def located_phone(gw: Gateway, ext: str, *, acknowledged: bool = True) -> Phone:
    phone = gw.phone(ext)
    if acknowledged:
        with Session(gw.engine) as s:
            acknowledge_notice(gw._env(s), phone.device_id)
    register(gw, phone)
    return phone


def test_911_from_a_notified_device_reaches_the_psap_with_pidf_lo_and_callback(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, routes=builtin_routes())
    alice = located_phone(gw, "1001")
    dial(gw, alice, "911", "e1")
    [invite] = gw.take(PSAP)
    assert isinstance(invite, Request) and invite.uri == "urn:service:sos"
    pidf = conveyed(invite)
    assert pidf.civic.country == "US" and pidf.civic.a3 == "San Jose"
    assert "+14085550100" in (invite.get("p-asserted-identity") or "")
    [record] = list(gw.core.proxy.emergency_log)
    assert record["route_kind"] == "psap" and record["rule_id"] == "R15"
    assert record["pidf"] and record["pidf"].encode() in invite.body  # the exact PIDF-LO sent is kept
    from provisioning.e911_schemas import EmergencyCallIn

    EmergencyCallIn.model_validate(record)  # what the E911 store writes


def test_before_the_notice_is_acknowledged_the_call_goes_to_the_national_centre_without_location(
        tmp_path: Path) -> None:
    gw = Gateway(tmp_path, routes=builtin_routes())
    bob = located_phone(gw, "1002", acknowledged=False)
    dial(gw, bob, "911", "e2")
    [invite] = gw.take(PSAP)
    assert isinstance(invite, Request) and invite.uri.startswith("sip:ecrc@")
    assert invite.get("geolocation") is None and invite.get("p-asserted-identity") is None
    assert b"pidf" not in invite.body.lower()


def test_outside_line_9911_and_direct_urn_are_emergency_calls(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, routes=builtin_routes())
    alice = located_phone(gw, "1001")
    dial(gw, alice, "9911", "e3")
    dial(gw, alice, "urn:service:sos", "e4")
    uris = [m.uri for m in gw.take(PSAP) if isinstance(m, Request)]
    assert uris == ["urn:service:sos", "urn:service:sos"]


def test_r10_plan_without_emergency_calling_refuses_with_the_rule(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, plan="grasshopper", routes=builtin_routes())
    alice = gw.phone("1001")
    register(gw, alice)
    final = [m for m in dial(gw, alice, "911", "e5") if isinstance(m, Response) and m.status >= 200]
    assert final[0].status == 403 and "R10" in final[0].reason
    assert gw.take(PSAP) == []
    assert gw.records[-1]["rule_id"] == "R10"


def test_r11_suspended_account_and_site_outage(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, routes=builtin_routes())
    alice = located_phone(gw, "1001")
    with Session(gw.engine) as s:
        start_outage(gw._env(s), gw.location_id, "power")
    outage = [m for m in dial(gw, alice, "911", "e6") if isinstance(m, Response) and m.status >= 200]
    assert outage[0].status == 503 and "R11" in outage[0].reason and "Power" in outage[0].reason
    with Session(gw.engine) as s:
        suspend_account(gw._env(s), gw.account_id, "unpaid")
    suspended = [m for m in dial(gw, alice, "911", "e7") if isinstance(m, Response) and m.status >= 200]
    assert suspended[0].status == 403 and "R11" in suspended[0].reason
    assert gw.take(PSAP) == []


def test_emergency_call_passes_with_every_cap_exhausted(tmp_path: Path) -> None:
    connect = load_plans().plans["connect"]
    strict = replace(connect, max_concurrent_calls=0,
                     fair_use=FairUse(1, "account", "all", "refuse", "R26"))  # nothing is allowed
    gw = Gateway(tmp_path, routes=builtin_routes(), plans=PlanCatalog({"connect": strict}))
    alice, bob = located_phone(gw, "1001"), located_phone(gw, "1002")
    counters = gw.core.proxy.counters
    counters.ban(f"src:{alice.username}", 1e9)  # and a flood-guard ban on the caller
    refused = [m for m in dial(gw, alice, "1002", "n1") if isinstance(m, Response) and m.status >= 200]
    assert refused[0].status == 503  # an ordinary call is refused…
    dial(gw, alice, "911", "e8")
    [invite] = gw.take(PSAP)  # …the emergency call goes through
    assert isinstance(invite, Request) and invite.uri == "urn:service:sos"
    assert bob.username  # (bob exists so the ordinary call had a target)


def test_933_test_call_goes_to_the_psap_read_back(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, routes=builtin_routes())
    alice = located_phone(gw, "1001")
    dial(gw, alice, "933", "t1")
    [invite] = gw.take(PSAP)
    assert isinstance(invite, Request) and invite.uri.startswith("urn:service:test.sos")
    assert conveyed(invite).civic.country == "US"


def test_the_emergency_record_is_closed_with_its_end_time(tmp_path: Path) -> None:
    from provisioning.e911_schemas import EmergencyCallIn

    gw = Gateway(tmp_path, routes=builtin_routes())
    sent: list[dict[str, object]] = []
    gw.core.proxy.on_emergency = sent.append
    alice = located_phone(gw, "1001")
    dial(gw, alice, "911", "end1")
    gw.clock.advance(5)
    gw.core.calls.shutdown()  # any ending path (here: a clean shutdown) closes the record
    first, last = sent
    assert first["call_id"] == last["call_id"] and first.get("ended_at") is None
    assert last["ended_at"] is not None
    EmergencyCallIn.model_validate(last)

"""PSAP simulator without sockets: the judgement of INVITEs (checks.py) and the UAS state machine
(uas.py) on a manual clock, with captured sends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from e911.civic import CivicAddress
from e911.conveyance import parse_multipart
from e911.pidf import PidfValidator, build_pidf
from gateway.clock import ManualClock
from gateway.psap.checks import PsapConfig, Role, inspect_invite, role_of
from gateway.psap.invite import build_emergency_invite
from gateway.psap.log import ExpectedLocations, PsapLog
from gateway.psap.uas import PsapUas
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message
from gateway.sip.transaction import Timers

WALL0 = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE = "mac:00163e5a7c2e"
CALLBACK = "+12175550123"
HOME = CivicAddress(country="US", a1="IL", a2="Sangamon", a3="Springfield", prd="E", rd="Main", sts="ST",
                    hno="100", flr="4", nam="Example Corp", pc="62701", bld="North Tower", room="410")
CALLER = ("127.0.0.1", 5062)


@pytest.fixture(scope="module")
def validator() -> PidfValidator:
    return PidfValidator()


@pytest.fixture
def expected() -> ExpectedLocations:
    store = ExpectedLocations()
    store.set(DEVICE, HOME, callback=CALLBACK)
    return store


def pidf(civic: CivicAddress = HOME, device: str = DEVICE, at: datetime = WALL0, **kw: object) -> bytes:
    return build_pidf(civic, entity=f"pres:{CALLBACK}@gw.example.net", device_id=device, timestamp=at,
                      lang="en-US", **kw)  # type: ignore[arg-type]


def invite(**kw: object) -> Request:
    kw.setdefault("pidf", pidf())
    return build_emergency_invite(local=CALLER, **kw)  # type: ignore[arg-type]


def wire(req: Request) -> Request:
    """What the simulator actually receives: the serialised bytes parsed again."""
    msg = parse_message(req.to_bytes())
    assert isinstance(msg, Request)
    return msg


def judge(req: Request, expected: ExpectedLocations, validator: PidfValidator,
          config: PsapConfig | None = None):  # type: ignore[no-untyped-def]
    return inspect_invite(wire(req), config or PsapConfig(), expected.get, validator, WALL0)


# --- judgement ------------------------------------------------------------------------------

def test_a_good_emergency_call_passes_every_check(expected: ExpectedLocations,
                                                  validator: PidfValidator) -> None:
    insp = judge(invite(), expected, validator)
    assert insp.role is Role.EMERGENCY and insp.service_urn == "urn:service:sos"
    assert [(c.name, c.passed) for c in insp.checks] == [
        ("request_uri", True), ("callback_e164", True), ("contact", True), ("geolocation", True),
        ("pidf_schema", True), ("pidf_rfc5491", True), ("pidf_timestamp", True), ("retransmission", True),
        ("location_matches", True), ("callback_matches", True), ("sdp_offer", True)]
    assert insp.verdict == "pass" and (insp.status, insp.geolocation_error) == (200, None)
    assert insp.location is not None and insp.location.civic == HOME and insp.differences == []
    assert insp.device_id == DEVICE and insp.callback == CALLBACK


@pytest.mark.parametrize(("ruri", "to", "role", "urn"), [
    ("urn:service:sos", None, Role.EMERGENCY, "urn:service:sos"),
    ("urn:service:sos.fire", None, Role.EMERGENCY, "urn:service:sos.fire"),
    ("sip:psap@127.0.0.1:5070", "<urn:service:sos>", Role.EMERGENCY, "urn:service:sos"),
    ("sip:911@gw.example.net;user=phone", "<sip:911@gw.example.net>", Role.EMERGENCY, "urn:service:sos"),
    ("sip:psap@127.0.0.1", "<sip:112@gw.example.net>", Role.EMERGENCY, "urn:service:sos"),
    ("urn:service:test.sos", None, Role.TEST, "urn:service:test.sos"),
    ("sip:933@gw.example.net", "<sip:933@gw.example.net>", Role.TEST, "urn:service:test.sos"),
    ("sip:ecrc@127.0.0.1:5070", "<sip:911@gw.example.net>", Role.NATIONAL_CENTRE, "urn:service:sos"),
    ("sip:ecrc@127.0.0.1:5070", "<sip:1234@gw>", Role.NATIONAL_CENTRE, None),
])
def test_roles_from_the_request_uri_and_to(ruri: str, to: str | None, role: Role, urn: str | None) -> None:
    req = wire(invite(ruri=ruri, to=to))
    found, service, check = role_of(req, PsapConfig())
    assert (found, service, check.passed) == (role, urn, True)


def test_legacy_numbers_can_be_switched_off_and_other_targets_are_not_emergencies(
        expected: ExpectedLocations, validator: PidfValidator) -> None:
    req = invite(ruri="sip:911@gw.example.net", to="<sip:911@gw.example.net>")
    insp = judge(req, expected, validator, PsapConfig(legacy_mode=False))
    assert insp.role is None and insp.status == 404 and insp.verdict == "fail"
    other = judge(invite(ruri="sip:alice@gw.example.net", to="<sip:alice@gw.example.net>"), expected, validator)
    assert other.role is None and other.checks[0].name == "request_uri" and not other.checks[0].passed


def test_a_different_registered_location_fails_field_by_field(expected: ExpectedLocations,
                                                              validator: PidfValidator) -> None:
    moved = CivicAddress(**{**HOME.elements(), "flr": "3", "room": "311"})  # type: ignore[arg-type]
    insp = judge(invite(pidf=pidf(moved)), expected, validator)
    assert insp.status == 200 and insp.verdict == "fail"  # connects; the verdict fails
    assert insp.differences == [("flr", "3", "4"), ("room", "311", "410")]
    check = next(c for c in insp.checks if c.name == "location_matches")
    assert not check.passed and "FLR" in check.detail and "ROOM" in check.detail
    strict = judge(invite(pidf=pidf(moved)), expected, validator, PsapConfig(mismatch_status=424))
    assert strict.status == 424 and strict.geolocation_error == '100;code="Cannot Process Location"'


def test_unknown_device_and_wrong_callback_fail(expected: ExpectedLocations, validator: PidfValidator) -> None:
    insp = judge(invite(pidf=pidf(device="mac:0000000000ff")), expected, validator)
    assert insp.status == 200 and insp.verdict == "fail"
    assert "no registered location" in next(c for c in insp.checks if c.name == "location_matches").detail
    wrong = judge(invite(callback="+12175550199"), expected, validator)
    assert [c.name for c in wrong.checks if not c.passed] == ["callback_matches"]


@pytest.mark.parametrize(("change", "failed"), [
    ({"callback": None}, ["callback_e164", "callback_matches"]),
    ({"sdp": None}, ["sdp_offer"]),
])
def test_missing_callback_or_offer_fail_their_checks(expected: ExpectedLocations, validator: PidfValidator,
                                                     change: dict[str, object], failed: list[str]) -> None:
    insp = judge(invite(**change), expected, validator)
    assert [c.name for c in insp.checks if not c.passed] == failed and insp.status == 200


def test_non_e164_callback_fails(expected: ExpectedLocations, validator: PidfValidator) -> None:
    req = invite()
    req.set("p-asserted-identity", "<sip:2175550123@gw.example.net>")
    insp = judge(req, expected, validator)
    assert not next(c for c in insp.checks if c.name == "callback_e164").passed
    tel = invite()
    tel.set("p-asserted-identity", "<tel:+1-217-555-0123>")
    assert judge(tel, expected, validator).verdict == "pass"


@pytest.mark.parametrize(("edit", "code", "detail"), [
    (lambda r: r.set("geolocation", "<cid:nothing@gw>"), "100", "no body part"),
    (lambda r: r.set("geolocation", "<https://lis.example.com/1>"), "300", "by reference"),
    (lambda r: setattr(r, "body", r.body.replace(b"<gbp:retention-expiry>", b"<gp:retention-expiry>")
                       .replace(b"</gbp:retention-expiry>", b"</gp:retention-expiry>")), "100", ""),
    (lambda r: setattr(r, "body", r.body.replace(b"<ca:country>US</ca:country>", b"<ca:country>us</ca:country>")),
     "100", ""),
    (lambda r: setattr(r, "body", r.body.replace(b"</presence>", b"")), "100", ""),
])
def test_unusable_location_gets_424_with_geolocation_error(expected: ExpectedLocations, validator: PidfValidator,
                                                           edit, code: str, detail: str) -> None:  # type: ignore[no-untyped-def]
    req = invite()
    edit(req)
    insp = judge(req, expected, validator)
    assert insp.status == 424 and insp.reason == "Bad Location Information"
    assert insp.geolocation_error is not None and insp.geolocation_error.startswith(code + ";code=")
    assert insp.verdict == "fail"
    assert detail in " ".join(c.detail for c in insp.checks if not c.passed)


def test_no_location_at_all_is_a_failing_verdict_not_a_refusal(expected: ExpectedLocations,
                                                               validator: PidfValidator) -> None:
    insp = judge(invite(pidf=None), expected, validator)
    assert insp.status == 200 and insp.verdict == "fail" and insp.geolocation_error is None
    assert not next(c for c in insp.checks if c.name == "geolocation").passed


def test_stale_timestamp_and_forbidden_retransmission_fail(expected: ExpectedLocations,
                                                          validator: PidfValidator) -> None:
    old = judge(invite(pidf=pidf(at=WALL0 - timedelta(days=2))), expected, validator)
    assert [c.name for c in old.checks if not c.passed] == ["pidf_timestamp"]
    future = judge(invite(pidf=pidf(at=WALL0 + timedelta(hours=1))), expected, validator)
    assert [c.name for c in future.checks if not c.passed] == ["pidf_timestamp"]
    unchecked = judge(invite(pidf=pidf(at=WALL0 - timedelta(days=2))), expected, validator,
                      PsapConfig(max_pidf_age=None))
    assert unchecked.verdict == "pass"
    private = judge(invite(pidf=pidf(retransmission_allowed=False)), expected, validator)
    assert [c.name for c in private.checks if not c.passed] == ["retransmission"] and private.status == 200


def test_933_reads_back_address_and_callback(expected: ExpectedLocations, validator: PidfValidator) -> None:
    insp = judge(invite(ruri="urn:service:test.sos"), expected, validator)
    assert insp.role is Role.TEST and insp.status == 200 and insp.verdict == "pass"
    text = insp.readback or ""
    assert "Callback number: +12175550123" in text
    assert ("Location received: Example Corp, 100 E Main ST, North Tower, Floor 4, Room 410, Springfield, "
            "IL 62701, US") in text
    assert "Differences: none" in text and "Result: PASS" in text


def test_933_reports_differences_and_bad_location_in_the_read_back(expected: ExpectedLocations,
                                                                   validator: PidfValidator) -> None:
    moved = CivicAddress(**{**HOME.elements(), "flr": "2"})  # type: ignore[arg-type]
    insp = judge(invite(ruri="urn:service:test.sos", pidf=pidf(moved), callback="+12175550100"), expected,
                 validator)
    assert insp.status == 200 and insp.verdict == "fail"
    text = insp.readback or ""
    assert "FLR: received 2, registered 4" in text
    assert "callback: received +12175550100, registered +12175550123" in text
    assert "Result: FAIL" in text
    bad = invite(ruri="urn:service:test.sos")
    bad.set("geolocation", "<cid:missing@gw>")
    insp = judge(bad, expected, validator)
    assert insp.status == 200 and insp.geolocation_error is None  # a test call is always answered
    assert "Location received: none (no body part with Content-ID <missing@gw>" in (insp.readback or "")


def test_national_centre_expects_no_location(expected: ExpectedLocations, validator: PidfValidator) -> None:
    clean = judge(invite(ruri="sip:ecrc@127.0.0.1:5070", to="<sip:911@gw>", pidf=None, callback=None),
                  expected, validator)
    assert clean.role is Role.NATIONAL_CENTRE and clean.status == 200 and clean.verdict == "pass"
    leaked = judge(invite(ruri="sip:ecrc@127.0.0.1:5070", to="<sip:911@gw>"), expected, validator)
    assert leaked.verdict == "fail" and "R15" in leaked.checks[1].detail
    mode = judge(invite(pidf=None), expected, validator, PsapConfig(mode="national_centre"))
    assert mode.role is Role.NATIONAL_CENTRE and mode.verdict == "pass"


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="mode"):
        PsapConfig(mode="ambulance")
    with pytest.raises(ValueError, match="mismatch_status"):
        PsapConfig(mismatch_status=500)
    with pytest.raises(ValueError, match="answer_delay"):
        PsapConfig(answer_delay=-1)


# --- the UAS on a manual clock -------------------------------------------------------------------

@dataclass
class Rig:
    clock: ManualClock
    uas: PsapUas
    sent: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)

    def deliver(self, msg: Request | bytes) -> None:
        self.uas.on_datagram(msg if isinstance(msg, bytes) else msg.to_bytes(), CALLER)

    def responses(self) -> list[Response]:
        out = []
        for data, peer in self.sent:
            assert peer == CALLER
            msg = parse_message(data)
            assert isinstance(msg, Response)
            out.append(msg)
        return out

    def statuses(self) -> list[int]:
        return [r.status for r in self.responses()]

    def take(self) -> list[Response]:
        out = self.responses()
        self.sent.clear()
        return out


@pytest.fixture
def rig(expected: ExpectedLocations, validator: PidfValidator) -> Iterator[Rig]:
    yield make_rig(expected, validator)


def make_rig(expected: ExpectedLocations, validator: PidfValidator, config: PsapConfig | None = None) -> Rig:
    clock = ManualClock(wall0=WALL0)
    sent: list[tuple[bytes, tuple[str, int]]] = []
    uas = PsapUas(clock=clock, send=lambda data, peer: sent.append((data, peer)), host="127.0.0.1",
                  port=5070, media_port=5072, config=config or PsapConfig(), lookup=expected.get,
                  log=PsapLog(), validator=validator, timers=Timers())
    return Rig(clock, uas, sent)


def ack_for(req: Request, resp: Response) -> bytes:
    return (f"ACK {resp.values('contact')[0].strip('<>')} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKack{req.cseq.seq}\r\n"
            f"From: {req.get('from')}\r\nTo: {resp.get('to')}\r\nCall-ID: {req.call_id}\r\n"
            f"CSeq: {req.cseq.seq} ACK\r\nContent-Length: 0\r\n\r\n").encode()


def bye_for(req: Request, resp: Response, cseq: int = 2) -> bytes:
    return (f"BYE {resp.values('contact')[0].strip('<>')} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKbye{cseq}\r\n"
            f"From: {req.get('from')}\r\nTo: {resp.get('to')}\r\nCall-ID: {req.call_id}\r\n"
            f"CSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n").encode()


def test_uas_answers_confirms_and_ends_a_call(rig: Rig) -> None:
    req = invite(record_route=["<sip:127.0.0.1:5060;lr>"])
    rig.deliver(req)
    trying, ok = rig.take()
    assert (trying.status, ok.status) == (100, 200) and trying.to_tag is None and ok.to_tag
    assert ok.get("content-type") == "application/sdp" and b"m=audio 5072 RTP/AVP 0 101" in ok.body
    assert ok.get_all("record-route") == ["<sip:127.0.0.1:5060;lr>"]
    assert ok.values("contact") == ["<sip:psap@127.0.0.1:5070>"]
    record = rig.uas.log.get(req.call_id)
    assert record is not None and record.state == "answered" and record.verdict == "pass"
    assert record.pidf is not None and "<ca:ROOM>410</ca:ROOM>" in record.pidf
    rig.clock.advance(0.5)  # T1: the 2xx is retransmitted until the ACK
    assert rig.statuses() == [200]
    rig.take()
    rig.deliver(ack_for(req, ok))
    assert record.state == "confirmed"
    rig.clock.advance(10)
    assert rig.take() == []  # no more retransmissions after the ACK
    rig.deliver(bye_for(req, ok))
    assert rig.statuses() == [200]
    assert (record.state, record.ended_by) == ("ended", "bye") and not rig.uas.dialogs
    rig.take()
    rig.deliver(bye_for(req, ok, cseq=3))  # the dialog is gone
    assert rig.statuses() == [481]


def test_uas_retransmitted_invite_gets_the_same_answer_not_a_new_call(rig: Rig) -> None:
    req = invite()
    rig.deliver(req)
    first = rig.take()
    rig.deliver(req)
    again = rig.take()
    assert [r.status for r in first] == [100, 200] and again == []  # Accepted state absorbs it
    assert len(rig.uas.log) == 1


def test_uas_gives_up_without_ack(rig: Rig) -> None:
    req = invite()
    rig.deliver(req)
    rig.take()
    rig.clock.advance(64 * 0.5 + 1)
    record = rig.uas.log.get(req.call_id)
    assert record is not None and (record.state, record.ended_by) == ("no_ack", "no_ack")
    resent = rig.statuses()
    assert resent and set(resent) == {200} and len(resent) <= 11  # T1, 2T1 … capped at T2
    assert not rig.uas.dialogs


def test_uas_424_is_retransmitted_until_acked(rig: Rig) -> None:
    req = invite()
    req.set("geolocation", "<cid:nothing@gw>")
    rig.deliver(req)
    trying, bad = rig.take()
    assert trying.status == 100
    assert bad.status == 424 and bad.get("geolocation-error") == '100;code="Cannot Process Location"'
    rig.clock.advance(0.5)
    assert rig.statuses() == [424]  # Timer G
    rig.take()
    # RFC 3261 §17.1.1.3: the ACK for a non-2xx reuses the INVITE's Request-URI and branch
    ack = (f"ACK {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
           f"To: {bad.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 1 ACK\r\n\r\n")
    rig.deliver(ack.encode())
    rig.clock.advance(5)
    assert rig.take() == []
    record = rig.uas.log.get(req.call_id)
    assert record is not None and record.state == "rejected" and record.status == 424


def test_uas_cancel_while_ringing(expected: ExpectedLocations, validator: PidfValidator) -> None:
    rig = make_rig(expected, validator, PsapConfig(answer_delay=5.0))
    req = invite()
    rig.deliver(req)
    assert rig.statuses() == [100, 180]
    ringing = rig.take()[1]
    cancel = (f"CANCEL {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
              f"To: {req.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n")
    rig.deliver(cancel.encode())
    ok, terminated = rig.take()
    assert (ok.status, ok.cseq.method, terminated.status, terminated.cseq.method) == (200, "CANCEL", 487, "INVITE")
    assert terminated.to_tag == ringing.to_tag
    rig.clock.advance(10)
    assert 200 not in rig.statuses()  # the answer timer was cancelled
    record = rig.uas.log.get(req.call_id)
    assert record is not None and (record.state, record.status, record.ended_by) == ("cancelled", 487, "cancel")


def test_uas_answers_after_the_ring_delay(expected: ExpectedLocations, validator: PidfValidator) -> None:
    rig = make_rig(expected, validator, PsapConfig(answer_delay=2.0))
    req = invite()
    rig.deliver(req)
    assert rig.statuses() == [100, 180]
    rig.take()
    rig.clock.advance(2.0)
    assert rig.statuses() == [200]
    late_cancel = (f"CANCEL {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
                   f"To: {req.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 1 CANCEL\r\n\r\n")
    rig.take()
    rig.deliver(late_cancel.encode())
    assert rig.statuses() == [200]  # answered already: the CANCEL changes nothing


def test_uas_933_answers_with_sdp_and_the_read_back(rig: Rig) -> None:
    req = invite(ruri="urn:service:test.sos")
    rig.deliver(req)
    ok = rig.take()[1]
    assert ok.status == 200 and (ok.get("content-type") or "").startswith("multipart/mixed")
    parts = parse_multipart(ok.get("content-type") or "", ok.body)
    assert [p.content_type for p in parts] == ["application/sdp", "text/plain"]
    assert b"Registered location: Example Corp, 100 E Main ST" in parts[1].body
    record = rig.uas.log.get(req.call_id)
    assert record is not None and record.role == "test" and record.readback == parts[1].body.decode()


def test_uas_other_requests(rig: Rig) -> None:
    options = (b"OPTIONS sip:psap@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKo1\r\n"
               b"From: <sip:a@b>;tag=1\r\nTo: <sip:psap@127.0.0.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\r\n")
    rig.deliver(options)
    (ok,) = rig.take()
    assert ok.status == 200 and "INVITE" in (ok.get("allow") or "")
    rig.deliver(options.replace(b"OPTIONS", b"MESSAGE").replace(b"z9hG4bKo1", b"z9hG4bKm1"))
    assert rig.statuses() == [405]
    rig.take()
    rig.deliver(b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKx\r\n"
                b"From: <sip:a@b>;tag=1\r\nTo: <sip:x>\r\nCall-ID: x1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 999\r\n\r\n")
    assert rig.statuses() == [400]
    rig.take()
    rig.deliver(b"garbage that is not SIP")
    rig.deliver(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKz\r\nFrom: <sip:a@b>;tag=1\r\n"
                b"To: <sip:x>;tag=2\r\nCall-ID: z\r\nCSeq: 1 BYE\r\n\r\n")
    assert rig.take() == []


def test_uas_reinvite_gets_the_same_answer(rig: Rig) -> None:
    req = invite()
    rig.deliver(req)
    ok = rig.take()[1]
    rig.deliver(ack_for(req, ok))
    reinvite = (f"INVITE {ok.values('contact')[0].strip('<>')} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKre2\r\nFrom: {req.get('from')}\r\n"
                f"To: {ok.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 2 INVITE\r\n"
                f"Contact: <sip:a@127.0.0.1:5062>\r\nContent-Length: 0\r\n\r\n").encode()
    rig.deliver(reinvite)
    (re_ok,) = rig.take()
    assert re_ok.status == 200 and re_ok.body == ok.body

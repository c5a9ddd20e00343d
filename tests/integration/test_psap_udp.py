"""The PSAP simulator over real UDP on 127.0.0.1: emergency INVITEs built with the conveyance code
(the way the gateway forwards them) reach a running simulator, in-process and as
`python -m gateway.psap`; the verdicts and stored PIDF-LOs are checked."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from e911.civic import CivicAddress, check, differences
from e911.conveyance import parse_multipart
from e911.pidf import PidfValidator, build_pidf, device_uri, parse_pidf
from gateway.psap import ExpectedLocations, PsapConfig, PsapServer
from gateway.psap.invite import build_emergency_invite
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message

ROOT = Path(__file__).resolve().parents[2]
DEVICE = device_uri(7, "00:16:3e:5a:7c:2e")
CALLBACK = "+12175550123"
REGISTERED, _ = check({"country": "US", "a1": "IL", "a2": "Sangamon", "a3": "Springfield", "prd": "E",
                       "rd": "Main", "sts": "ST", "hno": "100", "flr": "4", "nam": "Example Corp",
                       "pc": "62701", "bld": "North Tower", "room": "410"})
TIMEOUT = 5.0


class UdpPhone(asyncio.DatagramProtocol):
    """A minimal SIP caller: sends what it is given, queues every response it receives."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = parse_message(data)
        assert isinstance(msg, Response), "the PSAP simulator sends no requests"
        self.inbox.put_nowait(msg)

    @property
    def local(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    async def final(self) -> Response:
        """The next final response (skipping 1xx)."""
        while True:
            resp = await asyncio.wait_for(self.inbox.get(), TIMEOUT)
            if resp.status >= 200:
                return resp


@pytest.fixture
async def phone() -> AsyncIterator[UdpPhone]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(UdpPhone, local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()


@pytest.fixture
async def psap() -> AsyncIterator[PsapServer]:
    expected = ExpectedLocations()
    expected.set(DEVICE, REGISTERED, callback=CALLBACK)
    server = await PsapServer.start("127.0.0.1", 0, lookup=expected.get)
    yield server
    await server.close()


def emergency(phone: UdpPhone, *, civic: CivicAddress = REGISTERED, **kw: object) -> Request:
    pidf = build_pidf(civic, entity=f"pres:{CALLBACK}@gw.example.net", device_id=DEVICE,
                      timestamp=datetime.now(UTC), lang="en-US")
    kw.setdefault("pidf", pidf)
    return build_emergency_invite(local=phone.local, **kw)  # type: ignore[arg-type]


def ack(req: Request, resp: Response) -> bytes:
    """The ACK for a 2xx goes to the Contact with a new branch; for a non-2xx it reuses the INVITE's."""
    via = req.get("via") or ""
    if resp.status < 300:
        target, via = resp.values("contact")[0].strip("<>"), via.replace("branch=", "branch=ack")
    else:
        target = req.uri
    return (f"ACK {target} SIP/2.0\r\nVia: {via}\r\nFrom: {req.get('from')}\r\nTo: {resp.get('to')}\r\n"
            f"Call-ID: {req.call_id}\r\nCSeq: {req.cseq.seq} ACK\r\nContent-Length: 0\r\n\r\n").encode()


def bye(req: Request, resp: Response) -> bytes:
    return (f"BYE {resp.values('contact')[0].strip('<>')} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {req.top_via.host}:{req.top_via.port};branch=z9hG4bKbye{req.cseq.seq}\r\n"
            f"From: {req.get('from')}\r\nTo: {resp.get('to')}\r\nCall-ID: {req.call_id}\r\n"
            f"CSeq: {req.cseq.seq + 1} BYE\r\nContent-Length: 0\r\n\r\n").encode()


async def until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_emergency_call_passes_and_the_stored_pidf_matches_field_by_field(
        psap: PsapServer, phone: UdpPhone) -> None:
    req = emergency(phone)
    phone.send(req.to_bytes(), (psap.host, psap.port))
    ok = await phone.final()
    assert ok.status == 200 and ok.get("content-type") == "application/sdp"
    assert f"m=audio {psap.media_port} RTP/AVP".encode() in ok.body
    phone.send(ack(req, ok), (psap.host, psap.port))
    record = psap.log.get(req.call_id)
    assert record is not None
    await until(lambda: record.state == "confirmed", "the ACK to confirm the call")
    assert record.verdict == "pass", record.to_dict()
    assert record.role == "emergency" and record.callback == CALLBACK and record.device_id == DEVICE
    assert all(c.passed for c in record.checks)
    stored = parse_pidf((record.pidf or "").encode())
    assert differences(stored.civic, REGISTERED) == [] and stored.civic == REGISTERED
    assert record.conveyed == record.expected == REGISTERED.elements()
    assert PidfValidator().problems((record.pidf or "").encode()) == []
    phone.send(bye(req, ok), (psap.host, psap.port))
    bye_ok = await phone.final()
    assert (bye_ok.status, bye_ok.cseq.method) == (200, "BYE")
    assert (record.state, record.ended_by) == ("ended", "bye")


async def test_a_bad_pidf_lo_gets_424_with_geolocation_error(psap: PsapServer, phone: UdpPhone) -> None:
    req = emergency(phone)
    req.body = req.body.replace(b"<ca:RD>Main</ca:RD>", b"").replace(b"<ca:HNO>100</ca:HNO>",
                                                                       b"<ca:HNO>100</ca:HNO><ca:RD>Main</ca:RD>")
    phone.send(req.to_bytes(), (psap.host, psap.port))
    bad = await phone.final()
    assert (bad.status, bad.reason) == (424, "Bad Location Information")
    assert bad.get("geolocation-error") == '100;code="Cannot Process Location"'
    phone.send(ack(req, bad), (psap.host, psap.port))
    record = psap.log.get(req.call_id)
    assert record is not None and record.verdict == "fail" and record.state == "rejected"
    schema = record.check("pidf_schema")
    assert schema is not None and not schema.passed and "RD" in schema.detail
    assert record.pidf is not None and "<ca:HNO>100</ca:HNO><ca:RD>Main</ca:RD>" in record.pidf


async def test_a_moved_device_connects_but_the_verdict_names_the_fields(psap: PsapServer,
                                                                        phone: UdpPhone) -> None:
    moved = CivicAddress(**{**REGISTERED.elements(), "flr": "2", "room": "210"})  # type: ignore[arg-type]
    req = emergency(phone, civic=moved)
    phone.send(req.to_bytes(), (psap.host, psap.port))
    ok = await phone.final()
    assert ok.status == 200
    phone.send(ack(req, ok), (psap.host, psap.port))
    record = psap.log.get(req.call_id)
    assert record is not None and record.verdict == "fail" and record.failed_checks == ["location_matches"]
    assert record.differences == [{"field": "flr", "conveyed": "2", "registered": "4"},
                                  {"field": "room", "conveyed": "210", "registered": "410"}]


async def test_933_reads_back_the_registered_address(psap: PsapServer, phone: UdpPhone) -> None:
    req = emergency(phone, ruri="sip:933@gw.example.net;user=phone", to="<sip:933@gw.example.net>")
    phone.send(req.to_bytes(), (psap.host, psap.port))
    ok = await phone.final()
    assert ok.status == 200
    parts = parse_multipart(ok.get("content-type") or "", ok.body)
    text = next(p.body for p in parts if p.content_type == "text/plain").decode()
    assert "Callback number: +12175550123" in text
    assert "Registered location: Example Corp, 100 E Main ST, North Tower, Floor 4, Room 410" in text
    assert "Differences: none" in text
    phone.send(ack(req, ok), (psap.host, psap.port))
    record = psap.log.get(req.call_id)
    assert record is not None and record.role == "test" and record.readback == text


async def test_national_centre_call_without_location(psap: PsapServer, phone: UdpPhone) -> None:
    req = emergency(phone, ruri=psap.national_centre_uri, to="<sip:911@gw.example.net>", pidf=None,
                    callback=None)
    phone.send(req.to_bytes(), (psap.host, psap.port))
    ok = await phone.final()
    assert ok.status == 200
    phone.send(ack(req, ok), (psap.host, psap.port))
    record = psap.log.get(req.call_id)
    assert record is not None and record.role == "national_centre" and record.verdict == "pass"
    assert record.pidf is None


async def test_cancel_while_the_psap_rings(phone: UdpPhone) -> None:
    expected = ExpectedLocations()
    server = await PsapServer.start("127.0.0.1", 0, lookup=expected.get, config=PsapConfig(answer_delay=30))
    try:
        req = emergency(phone)
        phone.send(req.to_bytes(), (server.host, server.port))
        ringing = None
        while ringing is None:
            resp = await asyncio.wait_for(phone.inbox.get(), TIMEOUT)
            ringing = resp if resp.status == 180 else None
        cancel = (f"CANCEL {req.uri} SIP/2.0\r\nVia: {req.get('via')}\r\nFrom: {req.get('from')}\r\n"
                  f"To: {req.get('to')}\r\nCall-ID: {req.call_id}\r\nCSeq: 1 CANCEL\r\n\r\n")
        phone.send(cancel.encode(), (server.host, server.port))
        finals = {(r.status, r.cseq.method) for r in [await phone.final(), await phone.final()]}
        assert finals == {(200, "CANCEL"), (487, "INVITE")}
        record = server.log.get(req.call_id)
        assert record is not None and record.state == "cancelled"
    finally:
        await server.close()


async def test_standalone_simulator_process(tmp_path: Path, phone: UdpPhone) -> None:
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({DEVICE: {**REGISTERED.elements(), "callback_number": CALLBACK}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.psap", "--listen", "127.0.0.1:0", "--expected", str(expected)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stderr is not None and proc.stdout is not None
        banner = ""
        while "listening on udp:" not in banner:  # log lines may come first
            banner = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 20)
            assert banner, "the simulator exited before listening"
        port = int(banner.split("udp:127.0.0.1:")[1].split()[0])
        req = emergency(phone)
        phone.send(req.to_bytes(), ("127.0.0.1", port))
        ok = await phone.final()
        assert ok.status == 200
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), TIMEOUT)
        record = json.loads(line)
        assert record["call_id"] == req.call_id and record["verdict"] == "pass"
        assert record["conveyed"] == REGISTERED.elements()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0

"""The built-in peers over real UDP on 127.0.0.1: SIPp calls the simulated PSTN (answered, busy 486,
answered then hung up by the PSTN's own BYE), a raw socket checks the RTP echo end to end, and SIPp
and raw phones dial into the conference bridge (join, wrong PIN, the cap and its release).

The servers run in-process on the test's loop; SIPp runs in a worker thread so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.conference import ConferenceServer
from gateway.media import RtpEcho
from gateway.pstn import PstnServer
from gateway.sip.message import Request, Response
from gateway.sip.parser import parse_message
from tests.peers.ports import ipv6_loopback_available
from tests.peers.sipp import SippResult, SippRun, run_sipp

pytestmark = pytest.mark.peers
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 5.0

REFUSED = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call refused with {status}">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="{status}"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""

HUNG_UP = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answered, then the far end hangs up">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


async def sipp(workdir: Path, tag: str, port: int, service: str, scenario: str = "sn:uac") -> SippResult:
    if not scenario.startswith("sn:"):
        path = workdir / f"{tag}.xml"
        path.write_text(scenario)
        scenario = str(path)
    run = SippRun(scenario, f"127.0.0.1:{port}", service=service, timeout_s=10)
    return await asyncio.to_thread(run_sipp, run, workdir, tag)


class Phone(asyncio.DatagramProtocol):
    """A minimal SIP caller over UDP, with an RTP socket of its own."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait(parse_message(data))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))

    async def final(self) -> Response:
        while True:
            msg = await asyncio.wait_for(self.inbox.get(), TIMEOUT)
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    def invite(self, user: str, port: int, rtp_port: int = 4000) -> Request:
        sdp = (f"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()
        req = Request("INVITE", f"sip:{user}@127.0.0.1:{port}", [
            ["via", "Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport"],
            ["max-forwards", "Max-Forwards", "70"],
            ["from", "From", f"<sip:phone@127.0.0.1:{self.port}>;tag={secrets.token_hex(4)}"],
            ["to", "To", f"<sip:{user}@127.0.0.1:{port}>"],
            ["call-id", "Call-ID", secrets.token_hex(8)],
            ["cseq", "CSeq", "1 INVITE"],
            ["contact", "Contact", f"<sip:phone@127.0.0.1:{self.port}>"],
            ["content-type", "Content-Type", "application/sdp"],
        ], sdp)
        self.send(req.to_bytes(), port)
        return req

    def in_dialog(self, method: str, req: Request, ok: Response, cseq: int, port: int) -> None:
        self.send((f"{method} {ok.values('contact')[0].strip('<>')} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
                   f"From: {req.get('from')}\r\nTo: {ok.get('to')}\r\nCall-ID: {req.call_id}\r\n"
                   f"CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), port)

    async def call(self, user: str, port: int, rtp_port: int = 4000) -> tuple[Request, Response]:
        req = self.invite(user, port, rtp_port)
        ok = await self.final()
        assert ok.status == 200, (ok.status, ok.reason)
        self.in_dialog("ACK", req, ok, 1, port)
        return req, ok

    async def hang_up(self, req: Request, ok: Response, port: int) -> None:
        self.in_dialog("BYE", req, ok, 2, port)
        assert (await self.final()).status == 200


class RtpSocket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait(data)


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()


@pytest.fixture
async def pstn() -> AsyncIterator[PstnServer]:
    server = await PstnServer.start("127.0.0.1", 0)
    yield server
    await server.close()


@pytest.fixture
async def conference() -> AsyncIterator[ConferenceServer]:
    server = await ConferenceServer.start("127.0.0.1", 0, max_participants=2)
    yield server
    await server.close()


# --- simulated PSTN ------------------------------------------------------------------------------------

async def test_sipp_call_to_the_pstn_is_answered(sipp_binary: str, pstn: PstnServer, tmp_path: Path) -> None:
    result = await sipp(tmp_path, "answered", pstn.port, "+14155550100")
    assert result.ok, result.describe()
    (record,) = pstn.log.calls()
    assert (record.number, record.rule, record.status) == ("+14155550100", "*0100", 200)
    assert (record.state, record.ended_by) == ("ended", "bye"), record


async def test_sipp_call_to_a_busy_number_gets_486(sipp_binary: str, pstn: PstnServer, tmp_path: Path) -> None:
    result = await sipp(tmp_path, "busy", pstn.port, "+14155550486", REFUSED.format(status=486))
    assert result.ok, result.describe()
    assert "SIP/2.0 486 Busy Here" in result.messages
    (record,) = pstn.log.calls()
    assert (record.rule, record.state, record.status) == ("*0486", "rejected", 486)


async def test_sipp_call_hung_up_by_the_pstn_after_n_seconds(sipp_binary: str, pstn: PstnServer,
                                                             tmp_path: Path) -> None:
    pstn.rules.set_rule("+14155550199", {"action": "answer", "hang_up_after": 0.5})
    result = await sipp(tmp_path, "hung-up", pstn.port, "+14155550199", HUNG_UP)
    assert result.ok, result.describe()
    bye = re.search(r"^BYE (\S+) SIP/2.0", result.messages, re.MULTILINE)
    assert bye is not None and bye.group(1).startswith("sip:sipp@127.0.0.1:"), result.messages  # its Contact
    (record,) = pstn.log.calls()
    assert (record.ended_by, record.bye_status) == ("hangup", 200)


async def test_rtp_sent_to_the_answer_comes_back(pstn: PstnServer, phone: Phone) -> None:
    loop = asyncio.get_running_loop()
    transport, rtp = await loop.create_datagram_endpoint(RtpSocket, local_addr=("127.0.0.1", 0))
    try:
        rtp_port = transport.get_extra_info("sockname")[1]
        req, ok = await phone.call("+14155550100", pstn.port, rtp_port)
        answer = re.search(rb"m=audio (\d+) RTP/AVP", ok.body)
        assert answer is not None and int(answer.group(1)) == pstn.media_port
        packets = [struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xABCDEF01) + bytes([seq]) * 160
                   for seq in range(1, 6)]
        for packet in packets:
            transport.sendto(packet, ("127.0.0.1", pstn.media_port))
        echoed = [await asyncio.wait_for(rtp.inbox.get(), TIMEOUT) for _ in packets]
        assert [e[2:4] + e[12:] for e in echoed] == [p[2:4] + p[12:] for p in packets]  # sequence and audio
        assert all(e[8:12] != p[8:12] for e, p in zip(echoed, packets, strict=True))  # not our SSRC
        await phone.hang_up(req, ok, pstn.port)
        (data,) = pstn.log.to_dicts()
        assert data["rtp"] == {"received": len(packets), "echoed": len(packets)}
    finally:
        transport.close()


async def test_echo_socket_alone_echoes_rtp_and_not_rtcp() -> None:
    echo = await RtpEcho.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    transport, rtp = await loop.create_datagram_endpoint(RtpSocket, local_addr=("127.0.0.1", 0))
    try:
        transport.sendto(struct.pack("!BBHI", 0x80, 200, 6, 1) + b"\x00" * 20, ("127.0.0.1", echo.port))  # RTCP SR
        packet = struct.pack("!BBHII", 0x80, 8, 1, 160, 7) + b"\xd5" * 160
        transport.sendto(packet, ("127.0.0.1", echo.port))
        back = await asyncio.wait_for(rtp.inbox.get(), TIMEOUT)
        assert back[12:] == packet[12:] and rtp.inbox.empty()
        source = ("127.0.0.1", transport.get_extra_info("sockname")[1])
        assert echo.counts(source).to_dict() == {"received": 2, "echoed": 1}
    finally:
        transport.close()
        echo.close()


# --- conference bridge ------------------------------------------------------------------------------------

async def test_sipp_joins_a_room_and_leaves(sipp_binary: str, conference: ConferenceServer,
                                           tmp_path: Path) -> None:
    room = conference.bridge.create_room("ann.lee", pin="2468")
    result = await sipp(tmp_path, "join", conference.port, room.number)
    assert result.ok, result.describe()
    assert conference.bridge.roster(room.number) == []
    wrong = await sipp(tmp_path, "wrong-pin", conference.port, f"{room.number}*1357", REFUSED.format(status=403))
    assert wrong.ok and "SIP/2.0 403 Wrong organizer PIN" in wrong.messages, wrong.describe()


async def test_the_cap_refuses_the_next_caller_until_one_leaves(sipp_binary: str, conference: ConferenceServer,
                                                               phone: Phone, tmp_path: Path) -> None:
    room = conference.bridge.create_room("ann.lee", pin="2468")
    first = await phone.call(room.number, conference.port)
    await phone.call(f"{room.number}*2468", conference.port)
    roster = conference.bridge.roster(room.number)
    assert roster is not None and [p.role for p in roster] == ["participant", "organizer"]
    full = await sipp(tmp_path, "full", conference.port, room.number, REFUSED.format(status=486))
    assert full.ok and "SIP/2.0 486 Conference full: 2 connections (R30)" in full.messages, full.describe()
    await phone.hang_up(*first, conference.port)
    admitted = await sipp(tmp_path, "admitted", conference.port, room.number)
    assert admitted.ok, admitted.describe()
    assert [p.role for p in conference.bridge.roster(room.number) or []] == ["organizer"]


async def test_standalone_pstn_process(sipp_binary: str, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.pstn", "--listen", "127.0.0.1:0", "--rule", "+1555*=decline",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        port = None
        while port is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 15)).decode()
            assert line, "python -m gateway.pstn exited before listening"
            found = re.search(r"listening on udp:127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        result = await sipp(tmp_path, "standalone", port, "+15550001234", REFUSED.format(status=603))
        assert result.ok, result.describe()
        records: list[dict[str, Any]] = []
        while not records or records[-1]["state"] != "rejected":
            records.append(json.loads(await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)))
        assert (records[-1]["rule"], records[-1]["status"], records[-1]["number"]) == ("+1555*", 603, "+15550001234")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_pstn_over_ipv6_loopback() -> None:
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback here")
    server = await PstnServer.start("::1", 0)
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(RtpSocket, local_addr=("::1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        invite = (f"INVITE sip:+14155550486@[::1]:{server.port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP [::1]:{port};branch=z9hG4bK6{secrets.token_hex(4)}\r\n"
                  f"From: <sip:phone@[::1]>;tag=v6\r\nTo: <sip:+14155550486@[::1]>\r\nCall-ID: v6-{port}\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:phone@[::1]:{port}>\r\nContent-Length: 0\r\n\r\n").encode()
        transport.sendto(invite, ("::1", server.port))
        statuses: list[int] = []
        while not statuses or statuses[-1] < 200:
            msg = parse_message(await asyncio.wait_for(inbox.inbox.get(), TIMEOUT))
            assert isinstance(msg, Response)
            statuses.append(msg.status)
        assert statuses == [100, 486] and server.route_uri("+1") == f"sip:+1@[::1]:{server.port}"
    finally:
        transport.close()
        await server.close()

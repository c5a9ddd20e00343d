"""The built-in peers' pure helpers: SDP answers, next-hop addresses, the RTP echo's packet rule."""

from __future__ import annotations

import struct

import pytest

from e911.conveyance import build_multipart
from gateway.media import SSRC_MASK, echo_packet, is_rtcp
from gateway.sip.message import Request
from gateway.uas.dialog import Dialog, build_request, hop_address, request_target
from gateway.uas.sdp import answer_sdp, media_address, offer_of

OFFER = (b"v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
         b"m=audio 4000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\n"
         b"m=video 4002 RTP/AVP 97\r\nc=IN IP4 192.0.2.9\r\n")


def lines(sdp: bytes) -> list[str]:
    return sdp.decode().split("\r\n")


def test_answer_keeps_the_offerers_codec_order_and_refuses_other_streams() -> None:
    answer = lines(answer_sdp(OFFER, "127.0.0.1", 7000, 42, origin="voiplab-pstn", session_name="PSTN"))
    assert "o=voiplab-pstn 42 42 IN IP4 127.0.0.1" in answer and "s=PSTN" in answer
    assert "m=audio 7000 RTP/AVP 8 96" in answer and "a=rtpmap:8 PCMA/8000" in answer
    assert "a=rtpmap:96 telephone-event/8000" in answer
    assert "m=video 0 RTP/AVP 97" in answer  # one m= line per offered one (RFC 3264 §6)


@pytest.mark.parametrize(("offered", "answered"), [
    ("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive")])
def test_answer_mirrors_the_direction(offered: str, answered: str) -> None:
    media_level = OFFER.replace(b"a=rtpmap:96", f"a={offered}\r\na=rtpmap:96".encode())
    assert f"a={answered}" in lines(answer_sdp(media_level, "127.0.0.1", 7000))
    session_level = OFFER.replace(b"t=0 0\r\n", f"t=0 0\r\na={offered}\r\n".encode())
    assert f"a={answered}" in lines(answer_sdp(session_level, "127.0.0.1", 7000))


def test_answer_without_a_usable_codec_or_offer() -> None:
    g729 = OFFER.replace(b"RTP/AVP 8 0 96", b"RTP/AVP 18")
    assert "m=audio 0 RTP/AVP 18" in lines(answer_sdp(g729, "127.0.0.1", 7000))
    own_offer = lines(answer_sdp(None, "::1", 7000, 5, version=9))
    assert "o=voiplab 5 9 IN IP6 ::1" in own_offer and "m=audio 7000 RTP/AVP 0 8 101" in own_offer


def test_media_address_reads_the_first_audio_stream() -> None:
    assert media_address(OFFER) == ("192.0.2.1", 4000)
    own_c = OFFER.replace(b"a=rtpmap:96", b"c=IN IP4 192.0.2.5\r\na=rtpmap:96")
    assert media_address(own_c) == ("192.0.2.5", 4000)
    assert media_address(OFFER.replace(b"m=audio 4000", b"m=audio 0")) is None
    assert media_address(b"v=0\r\n") is None and media_address(None) is None


def test_offer_of_plain_and_multipart_bodies() -> None:
    req = Request("INVITE", "sip:x@127.0.0.1", [["content-type", "Content-Type", "application/sdp"]], OFFER)
    assert offer_of(req) == OFFER
    ctype, body = build_multipart([([("Content-Type", "application/sdp")], OFFER),
                                   ([("Content-Type", "application/pidf+xml")], b"<presence/>")])
    multi = Request("INVITE", "sip:x@127.0.0.1", [["content-type", "Content-Type", ctype]], body)
    assert offer_of(multi) == OFFER
    broken = Request("INVITE", "sip:x@127.0.0.1", [["content-type", "Content-Type", "multipart/mixed"]], b"x")
    assert offer_of(broken) is None
    assert offer_of(Request("INVITE", "sip:x@127.0.0.1")) is None


@pytest.mark.parametrize(("uri", "expected"), [
    ("sip:127.0.0.7:5080;lr", ("127.0.0.7", 5080)),
    ("sip:127.0.0.7;lr", ("127.0.0.7", 5060)),
    ("sips:127.0.0.7", ("127.0.0.7", 5061)),
    ("sip:[::1]:5070;transport=udp", ("::1", 5070)),
    ("sip:gw.example.net;lr", ("127.0.0.1", 9)),  # a name: the fallback (no DNS in a sans-IO agent)
    ("sip:gw.example.net;maddr=127.0.0.3", ("127.0.0.1", 9)),
    ("sip:127.0.0.7;maddr=127.0.0.3", ("127.0.0.3", 5060)),
    ("tel:+14155550100", ("127.0.0.1", 9)),
    ("not a uri", ("127.0.0.1", 9)),
])
def test_hop_address(uri: str, expected: tuple[str, int]) -> None:
    assert hop_address(uri, ("127.0.0.1", 9)) == expected


def test_requests_in_a_dialog_number_their_cseq_and_carry_the_route_set() -> None:
    dialog = Dialog("c1", "ours", "theirs", "<sip:+1415@pstn>", '"A" <sip:a@lab>;tag=theirs',
                    "sip:a@127.0.0.1:5062", ["<sip:127.0.0.7;lr>"], remote_cseq=12)
    first, hop = build_request(dialog, "BYE", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK1")
    second, _ = build_request(dialog, "BYE", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK2")
    assert (first.cseq.seq, second.cseq.seq) == (1, 2) and hop == "sip:127.0.0.7;lr"
    assert first.get("from") == "<sip:+1415@pstn>;tag=ours" and first.get("to") == '"A" <sip:a@lab>;tag=theirs'
    assert first.values("route") == ["<sip:127.0.0.7;lr>"] and first.uri == "sip:a@127.0.0.1:5062"
    dialog.route_set = []
    assert request_target(dialog) == ("sip:a@127.0.0.1:5062", [], "sip:a@127.0.0.1:5062")


def rtp(ssrc: int, seq: int = 1, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, 160 * seq, ssrc) + b"\xff" * 160


def test_echo_sends_rtp_back_under_another_ssrc_and_skips_rtcp_and_junk() -> None:
    packet = rtp(0x11223344, seq=9, pt=8)
    back = echo_packet(packet)
    assert back is not None and len(back) == len(packet)
    assert back[:8] == packet[:8] and back[12:] == packet[12:]  # sequence, timestamp, payload kept
    assert struct.unpack("!I", back[8:12])[0] == 0x11223344 ^ SSRC_MASK != 0x11223344
    sender_report = struct.pack("!BBHI", 0x80, 200, 6, 0x11223344) + b"\x00" * 20
    assert is_rtcp(sender_report) and echo_packet(sender_report) is None
    assert echo_packet(b"hello") is None and echo_packet(b"\x40" + packet[1:]) is None  # short / version 1

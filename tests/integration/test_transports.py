"""The gateway's transports over real sockets: UDP, TCP framing, TLS, IPv6, hostile input."""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from gateway.sip.message import Response
from gateway.sip.parser import StreamFramer, parse_message
from tests.peers.gateway import GatewayProcess
from tests.peers.ports import free_port


def options(host: str, port: int, *, transport: str = "UDP", local: str = "127.0.0.1:5999") -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(6)
    bracket = f"[{host}]" if ":" in host else host
    return (
        f"OPTIONS sip:{bracket}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {local};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{bracket}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{bracket}:{port}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def udp_exchange(host: str, port: int, data: bytes, *, timeout: float = 3.0) -> Response | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        try:
            reply = s.recv(65535)
        except TimeoutError:
            return None
    msg = parse_message(reply)
    assert isinstance(msg, Response)
    return msg


def stream_read(sock: socket.socket, count: int, timeout: float = 3.0) -> list[Response]:
    framer = StreamFramer()
    out: list[Response] = []
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        chunk = sock.recv(65535)
        if not chunk:
            break
        for raw in framer.feed(chunk):
            msg = parse_message(raw)
            assert isinstance(msg, Response)
            out.append(msg)
    return out


def test_udp_and_tcp_share_the_port_and_tcp_frames_by_content_length(gateway: GatewayProcess) -> None:
    host, port = "127.0.0.1", gateway.sip_port
    resp = udp_exchange(host, port, options(host, port))
    assert resp is not None and resp.status == 200
    with socket.create_connection((host, port), timeout=3) as s:
        one, two = options(host, port, transport="TCP"), options(host, port, transport="TCP")
        s.sendall(one + two)  # two messages in one segment
        three = options(host, port, transport="TCP")
        s.sendall(three[:37])  # one message split across segments
        time.sleep(0.05)
        s.sendall(three[37:])
        answers = stream_read(s, 3)
    assert [r.status for r in answers] == [200, 200, 200]


def test_tcp_garbage_closes_only_that_connection(gateway: GatewayProcess) -> None:
    host, port = "127.0.0.1", gateway.sip_port
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n")
        s.settimeout(3)
        assert s.recv(100) == b""  # the gateway closed the stream it cannot resynchronise
    resp = udp_exchange(host, port, options(host, port))
    assert resp is not None and resp.status == 200


def test_udp_junk_never_stops_the_listener(gateway: GatewayProcess) -> None:
    host, port = "127.0.0.1", gateway.sip_port
    junk = [b"", b"\x00" * 100, b"hello", b"SIP/2.0 200 OK\r\n\r\n", secrets.token_bytes(1400),
            b"OPTIONS sip:a SIP/2.0\r\n" + b"X: " + b"y" * 70000]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in junk:
            with contextlib.suppress(OSError):  # the 70 kB one is over the UDP limit: fine
                s.sendto(data, (host, port))
    resp = udp_exchange(host, port, options(host, port))
    assert resp is not None and resp.status == 200


def test_malformed_header_gets_400_naming_it(gateway: GatewayProcess) -> None:
    host, port = "127.0.0.1", gateway.sip_port
    data = options(host, port).replace(b"Max-Forwards: 70", b"Max-Forwards: seventy")
    resp = udp_exchange(host, port, data)
    assert resp is not None and resp.status == 400 and "Max-Forwards" in resp.reason


def test_tls_with_a_generated_self_signed_pair(gateway_factory: Callable[..., GatewayProcess],
                                               tmp_path: Any) -> None:
    tls_port = free_port("127.0.0.1", udp=False)
    gw = gateway_factory(extra_args=("--tls", "--tls-port", str(tls_port), "--data-dir", str(tmp_path)))
    assert (tmp_path / "sip-tls.crt").exists() and (tmp_path / "sip-tls.key").exists()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", tls_port), timeout=3) as raw, \
            ctx.wrap_socket(raw) as s:
        s.sendall(options("127.0.0.1", tls_port, transport="TLS"))
        [resp] = stream_read(s, 1)
    assert resp.status == 200
    assert gw.sip_port != tls_port


def test_ipv6_listener(gateway_factory: Callable[..., GatewayProcess]) -> None:
    gw = gateway_factory(sip_host="::1")
    resp = udp_exchange("::1", gw.sip_port, options("::1", gw.sip_port, local="[::1]:5999"))
    assert resp is not None and resp.status == 200
    assert resp.top_via.rport is not None and resp.top_via.rport is not True  # RFC 3581 filled in


def test_tcp_oversized_body_is_answered_413_then_closed(gateway: GatewayProcess) -> None:
    host, port = "127.0.0.1", gateway.sip_port
    head = options(host, port, transport="TCP").replace(b"Content-Length: 0", b"Content-Length: 50000000")
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(head)
        answers = stream_read(s, 1)
        assert [r.status for r in answers] == [413]
        s.settimeout(3)
        assert s.recv(100) == b""


def test_tcp_double_crlf_keepalive_gets_a_crlf_pong(gateway: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", gateway.sip_port), timeout=3) as s:
        s.sendall(b"\r\n\r\n")
        s.settimeout(3)
        assert s.recv(10) == b"\r\n"
        s.sendall(options("127.0.0.1", gateway.sip_port, transport="TCP"))
        assert [r.status for r in stream_read(s, 1)] == [200]  # the flow keeps working

"""A one-shot SIP OPTIONS over UDP: "is the server answering SIP yet?".

Both servers answer OPTIONS addressed to themselves with 200 (Kamailio by the
bench config, voiplab as a phone keep-alive), so one readiness check fits both.
"""

from __future__ import annotations

import secrets
import socket
import time


def options_status(host: str, port: int, timeout: float = 0.5) -> int | None:
    """Status code of the answer to one OPTIONS, or None when nothing came back in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(timeout)
        lhost, lport = sock.getsockname()[:2]
        tag = secrets.token_hex(6)
        msg = (
            f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {lhost}:{lport};branch=z9hG4bK{tag};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:bench@{lhost}>;tag={tag}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {tag}@{lhost}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        sock.sendto(msg, (host, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                return None
            parts = data.split(b" ", 2)
            if len(parts) >= 2 and parts[0] == b"SIP/2.0" and parts[1].isdigit():
                code = int(parts[1])
                if code >= 200:
                    return code
        return None


def wait_sip_ready(host: str, port: int, timeout: float) -> bool:
    """Poll with OPTIONS until a final answer arrives or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if options_status(host, port) is not None:
            return True
        time.sleep(0.1)
    return False

"""Free loopback ports chosen at run time.

SIP listens on UDP *and* TCP on the same port, so a SIP port is only "free" when both are.
The port is released before the caller binds it; the race is accepted (loopback, short window).

Ports are drawn from below the kernel's ephemeral range: a port the kernel handed out for
`bind(0)` could be handed out again to anyone binding port 0 in that window (the gateway's
own simulated PSTN took a test's chosen SIP port for its RTP echo this way, and SIPp's
video port, media port + 2, met another socket's ephemeral port).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1", *, udp: bool = True, tcp: bool = True) -> int:
    """Return a port on `host` that is free for every protocol asked for."""
    addr = host.strip("[]")
    top = _ephemeral_floor()
    for _ in range(200):
        port = random.randrange(max(1024, top - 12_000), top, 2)  # even: SIPp's RTP and video use +2
        if _is_free(addr, port, udp=udp, tcp=tcp):
            return port
    raise RuntimeError(f"no free port on {host} after 200 tries")


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out for bind(0) (Linux's default is 32768)."""
    try:
        return int(_PORT_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _is_free(addr: str, port: int, *, udp: bool, tcp: bool) -> bool:
    family = _family(addr)
    kinds = ([socket.SOCK_DGRAM] if udp else []) + ([socket.SOCK_STREAM] if tcp else [])
    held: list[socket.socket] = []
    try:
        for kind in kinds:
            s = socket.socket(family, kind)
            held.append(s)
            s.bind((addr, port))
    except OSError:
        return False
    finally:
        for s in held:
            s.close()
    return True


def ipv6_loopback_available() -> bool:
    """True when ::1 can be bound (some CI containers run without IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True

"""Free loopback ports chosen at run time.

SIP listens on UDP *and* TCP on the same port, so a SIP port is only "free" when both are.
The port is released before the caller binds it; the race is accepted (loopback, short window).
"""

from __future__ import annotations

import socket


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1", *, udp: bool = True, tcp: bool = True) -> int:
    """Return a port on `host` that is free for every protocol asked for."""
    family = _family(host.strip("[]"))
    addr = host.strip("[]")
    for _ in range(200):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((addr, 0))
            port = int(probe.getsockname()[1])
        if _is_free(addr, port, udp=udp, tcp=tcp):
            return port
    raise RuntimeError(f"no free port on {host} after 200 tries")


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

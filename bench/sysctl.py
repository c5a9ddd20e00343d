"""Raise the kernel's socket-buffer limits for the run, then put them back.

At tens of thousands of datagrams per second on loopback the default limits
(rmem_max 4 MiB here, rmem_default 208 KiB, netdev_max_backlog 1000) drop packets
in bursts, which SIPp sees as retransmissions and which would be charged to the
server. The same settings apply to both servers: Kamailio sizes its socket up to
`maxbuffer`; the default sizes cover a server that does not set SO_RCVBUF itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

SYSCTL = Path("/proc/sys")


def _path(name: str) -> Path:
    return SYSCTL / name.replace(".", "/")


def read(name: str) -> int:
    return int(_path(name).read_text().split()[0])


@contextlib.contextmanager
def raised(settings: dict[str, int], log: list[str]) -> Iterator[dict[str, int]]:
    """Raise each sysctl to at least the given value; restore the old values on exit.

    Yields the values in effect. Without permission (not root) the limits stay as
    they are and a line saying so goes to `log`: the run still works, it is just
    more likely to see drops at high rates.
    """
    old: dict[str, int] = {}
    effective: dict[str, int] = {}
    for name, want in settings.items():
        try:
            current = read(name)
        except OSError as exc:
            log.append(f"sysctl {name}: cannot read ({exc})")
            continue
        effective[name] = current
        if current >= want:
            continue
        try:
            _path(name).write_text(str(want))
        except OSError as exc:
            log.append(f"sysctl {name}: left at {current} ({exc.strerror})")
            continue
        old[name] = current
        effective[name] = want
    try:
        yield effective
    finally:
        for name, value in old.items():
            with contextlib.suppress(OSError):
                _path(name).write_text(str(value))

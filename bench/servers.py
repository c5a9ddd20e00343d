"""What the bench needs from a server under test, and process plumbing shared by both.

A server is started once per run, populated with the bench users, measured through
SIPp, and stopped. `launch` hides the order each server needs: Kamailio reads its
subscriber table at start, voiplab is provisioned over HTTP once it runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Protocol

from bench.users import BenchUser, SipAccount


class ServerError(RuntimeError):
    """The server could not be started or provisioned; the message says why."""


@dataclass
class ServerInfo:
    """Static facts for the report."""

    name: str
    version: str
    sip: str  # host:port
    details: dict[str, str] = field(default_factory=dict)


class BenchServer(Protocol):
    name: str
    domain: str
    sip_host: str
    sip_port: int

    def launch(self, users: Sequence[BenchUser]) -> dict[str, SipAccount]:
        """Start the server with these users; returns each user's SIP account by user name."""
        ...

    def restart(self) -> None:
        """Stop and start again with the same ports and users (bindings are lost)."""
        ...

    def pid(self) -> int:
        """Root of the server's process tree (for CPU accounting)."""
        ...

    def alive(self) -> bool: ...

    def info(self) -> ServerInfo: ...

    def log_tail(self, lines: int = 30) -> str: ...

    def stop(self) -> None: ...


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP right now (the OS picks; we check the other kind)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return port
    raise ServerError("no free port found on " + host)


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL to the process group we created for it (start_new_session)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=grace)


def env_pairs(items: list[str], fail: Callable[[str], NoReturn]) -> dict[str, str]:
    """``KEY=VALUE`` command-line items (``--voiplab-env``) as a dict; ``fail`` on a malformed one."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--voiplab-env wants KEY=VALUE, not {item!r}")
        env[key] = value
    return env

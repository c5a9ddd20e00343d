"""Loopback-only network namespaces for tests that send foreign addresses.

`LoopbackNamespace` prefers a named namespace (`ip netns add voiplab-<random>`, needs root) and
falls back to `unshare -rn` (unprivileged user + network namespace) when that is refused. Either
way `wrap(cmd)` returns the command line that runs `cmd` inside a namespace whose only interface
is `lo`. With the unshare fallback each wrapped command gets its *own* namespace, so run the
gateway and the sender from one wrapped process (tests.peers.rfc4475_run does).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess


class NamespaceUnavailable(RuntimeError):
    """Neither `ip netns` nor `unshare -rn` works here; the message says why."""


class LoopbackNamespace:
    def __init__(self) -> None:
        self.name: str | None = None
        self.mode = ""

    def __enter__(self) -> LoopbackNamespace:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def create(self) -> None:
        reasons: list[str] = []
        if shutil.which("ip"):
            name = f"voiplab-{secrets.token_hex(4)}"
            add = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
            if add.returncode == 0:
                self.name, self.mode = name, "ip-netns"
                up = subprocess.run(
                    ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                    capture_output=True,
                    text=True,
                )
                if up.returncode != 0:
                    self.delete()
                    raise NamespaceUnavailable(f"ip link set lo up in {name}: {up.stderr.strip()}")
                return
            reasons.append(f"`ip netns add` refused: {add.stderr.strip()}")
        else:
            reasons.append("`ip` (iproute2) is not installed")
        if shutil.which("unshare"):
            probe = subprocess.run(
                ["unshare", "-rn", "sh", "-c", "ip link set lo up 2>/dev/null; true"],
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                self.mode = "unshare"
                return
            reasons.append(f"`unshare -rn` refused: {probe.stderr.strip()}")
        else:
            reasons.append("`unshare` (util-linux) is not installed")
        raise NamespaceUnavailable("; ".join(reasons))

    def wrap(self, cmd: list[str]) -> list[str]:
        if self.mode == "ip-netns" and self.name:
            return ["ip", "netns", "exec", self.name, *cmd]
        if self.mode == "unshare":
            return ["unshare", "-rn", *cmd]
        raise NamespaceUnavailable("namespace not created")

    def delete(self) -> None:
        if self.mode == "ip-netns" and self.name:
            # anything still running in it was started by us (the namespace is ours alone)
            pids = subprocess.run(
                ["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)
            self.name = None
        self.mode = ""

"""Run SIPp (Debian `sip-tester`) as a real peer: one-shot clients and a background UAS.

Every run gets `-trace_msg -trace_err` with explicit log files in a work directory, a global
`-timeout` with `-timeout_error` (a hung scenario fails instead of blocking the test) and a
subprocess timeout on top. `SippResult.describe()` returns the command, exit code, error log and
message trace, so an assertion message shows the SIP exchange that went wrong.

SIPp exit codes: 0 all calls succeeded, 1 at least one failed, 97 stopped by command,
99 no call processed, 255/-1 fatal error.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.ports import free_port

SIPP = "sipp"
SCENARIO_DIR = Path(__file__).resolve().parents[1] / "data" / "sipp"


def sipp_available() -> str | None:
    """Path of the sipp binary, or None."""
    return shutil.which(SIPP)


@dataclass(frozen=True)
class SippRun:
    """One SIPp invocation. `remote` is `host:port` of the peer; `scenario` a path or a built-in
    name given as `"sn:uac"` / `"sn:uas"`."""

    scenario: str
    remote: str | None = None
    local_ip: str = "127.0.0.1"
    local_port: int = 0
    transport: str = "u1"  # u1: UDP one socket; t1: TCP one socket
    calls: int = 1
    service: str | None = None  # -s: user part of the Request-URI
    auth_user: str | None = None
    auth_password: str | None = None
    # digest "uri": SIPp's default is sip:remote_ip:remote_port, not the Request-URI; a
    # registrar that checks them against each other (RFC 2617 §3.2.2.5) needs this set.
    # Give it *without* the scheme: SIPp prepends "sip:" itself.
    auth_uri: str | None = None
    keys: dict[str, str] = field(default_factory=dict)  # -key name value → [name]
    timeout_s: float = 15.0
    hold_ms: int | None = None  # -d: length of <pause/> in the call scenarios
    extra: tuple[str, ...] = ()

    def command(self, workdir: Path, tag: str) -> list[str]:
        if self.scenario.startswith("sn:"):
            scen = ["-sn", self.scenario[3:]]
        else:
            scen = ["-sf", self.scenario]
        cmd = [SIPP]
        if self.remote:
            cmd.append(self.remote)
        cmd += scen
        cmd += ["-i", self.local_ip, "-t", self.transport, "-m", str(self.calls), "-nostdin"]
        # SIPp's defaults are fixed ports (5060 for SIP, 6000 for media): always pass free ones
        cmd += ["-p", str(self.local_port or free_port(self.local_ip))]
        cmd += ["-mp", str(free_port(self.local_ip, tcp=False))]
        # an unexpected message fails the call at once, without SIPp sending a BYE of its own
        cmd += ["-default_behaviors", "all,-bye"]
        if self.hold_ms is not None:
            cmd += ["-d", str(self.hold_ms)]
        if self.service is not None:
            cmd += ["-s", self.service]
        if self.auth_user is not None:
            cmd += ["-au", self.auth_user]
        if self.auth_password is not None:
            cmd += ["-ap", self.auth_password]
        if self.auth_uri is not None:
            cmd += ["-auth_uri", self.auth_uri]
        for name, value in self.keys.items():
            cmd += ["-key", name, value]
        cmd += [
            "-timeout",
            f"{int(self.timeout_s)}s",
            "-timeout_error",
            "-trace_msg",
            "-message_file",
            str(workdir / f"{tag}.messages.log"),
            "-trace_err",
            "-error_file",
            str(workdir / f"{tag}.errors.log"),
        ]
        cmd += list(self.extra)
        return cmd


@dataclass
class SippResult:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    messages: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        parts = [
            f"$ {' '.join(self.command)}",
            f"exit code {self.returncode}",
        ]
        if self.stderr.strip():
            parts += ["--- stderr ---", self.stderr[-3000:]]
        if self.errors.strip():
            parts += ["--- sipp error log ---", self.errors[-4000:]]
        if self.messages.strip():
            parts += ["--- sipp message trace ---", self.messages[-8000:]]
        return "\n".join(parts)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def run_sipp(run: SippRun, workdir: Path, tag: str) -> SippResult:
    """Run SIPp to completion (bounded by `run.timeout_s` + 10 s) and collect its logs."""
    cmd = run.command(workdir, tag)
    try:
        proc = subprocess.run(
            cmd, cwd=workdir, capture_output=True, text=True, timeout=run.timeout_s + 10
        )
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = -9, _text(exc.stdout), _text(exc.stderr) + "\n[killed: timeout]"
    return SippResult(
        cmd,
        rc,
        out,
        err,
        _read(workdir / f"{tag}.messages.log"),
        _read(workdir / f"{tag}.errors.log"),
    )


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


class SippBackground:
    """A SIPp (typically a UAS) running while the test drives the other side."""

    def __init__(self, run: SippRun, workdir: Path, tag: str) -> None:
        self.run = run
        self.workdir = workdir
        self.tag = tag
        self.command = run.command(workdir, tag)
        self._out = (workdir / f"{tag}.stdout").open("wb")
        self._err = (workdir / f"{tag}.stderr").open("wb")
        self.proc = subprocess.Popen(
            self.command, cwd=workdir, stdout=self._out, stderr=self._err
        )

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to finish on its own (it stops after `run.calls` calls)."""
        try:
            self.proc.wait(timeout if timeout is not None else self.run.timeout_s + 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return self._result()

    def stop(self) -> SippResult:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self._result()

    def _result(self) -> SippResult:
        for f in (self._out, self._err):
            with contextlib.suppress(OSError):
                f.close()
        return SippResult(
            self.command,
            int(self.proc.returncode),
            _read(self.workdir / f"{self.tag}.stdout"),
            _read(self.workdir / f"{self.tag}.stderr"),
            _read(self.workdir / f"{self.tag}.messages.log"),
            _read(self.workdir / f"{self.tag}.errors.log"),
        )


def scenario(name: str) -> str:
    """Path of a scenario in tests/data/sipp, failing clearly when it is missing."""
    path = SCENARIO_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"SIPp scenario {path} is missing")
    return str(path)

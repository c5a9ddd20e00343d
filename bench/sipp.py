"""Running SIPp and reading what it measured.

Every SIPp process runs in its own directory with `-trace_stat` (counters every
second, cumulative in the last row) and, for clients, `-trace_rtt` (one line per
completed response-time measurement, the `rtd` marks in the scenarios). CPU time of
each SIPp process comes from wait4()'s rusage, so we can tell when SIPp itself, not
the server, was the limit.

SIPp exit codes: 0 all calls succeeded, 1 at least one failed, 97 stopped by a
command or signal, 99 no call processed, 255 fatal error.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "sipp"

# stat-file columns we read (cumulative variants)
COUNTERS = {
    "created": "TotalCallCreated",
    "successful": "SuccessfulCall(C)",
    "failed": "FailedCall(C)",
    "unexpected": "FailedUnexpectedMessage(C)",
    "max_udp_retrans": "FailedMaxUDPRetrans(C)",
    "retransmissions": "Retransmissions(C)",
    "dead_call_msgs": "DeadCallMsgs(C)",
    "out_of_call_msgs": "OutOfCallMsgs(C)",
    "watchdog_major": "WatchdogMajor(C)",
    "watchdog_minor": "WatchdogMinor(C)",
    "current_calls": "CurrentCall",
}


@dataclass
class SippStats:
    counters: dict[str, int] = field(default_factory=dict)
    # (seconds since SIPp started, calls created so far), one point per -fd period
    created_curve: list[tuple[float, int]] = field(default_factory=list)

    def get(self, name: str) -> int:
        return self.counters.get(name, 0)

    def time_to_create(self, calls: int) -> float | None:
        """Seconds SIPp took to create `calls` calls (to one stat period), None if it never did."""
        return next((t for t, n in self.created_curve if n >= calls), None)


@dataclass
class SippProcessResult:
    role: str  # "uac" or "uas"
    argv: list[str]
    returncode: int | None
    wall_s: float
    cpu_s: float
    stats: SippStats
    rtt_ms: dict[int, list[float]]
    workdir: Path
    killed: bool = False

    def error_tail(self, lines: int = 15) -> str:
        logs = sorted(self.workdir.glob("*_errors.log"))
        if not logs:
            return ""
        return "\n".join(logs[0].read_text(errors="replace").splitlines()[:lines])


@dataclass(frozen=True)
class SippOptions:
    binary: str = "sipp"
    local_ip: str = "127.0.0.1"
    buff_size: int = 8 * 1024 * 1024
    stat_period: str = "100ms"  # -fd: fine enough to time the call-creation phase of a step
    rtt_freq: int = 1000


def client_argv(opts: SippOptions, *, scenario: Path, remote: str, local_port: int,
                media_port: int, inf: Path, rate: float, calls: int, limit: int,
                timeout_s: float, trace_rtt: bool = True) -> list[str]:
    """A rate-driven client: `calls` calls at `rate` per second (-rp 1000 ms), at most
    `limit` at once, the whole run cut at `timeout_s`."""
    argv = [
        opts.binary, remote, "-sf", str(scenario), "-inf", str(inf),
        "-i", opts.local_ip, "-p", str(local_port), "-mp", str(media_port),
        "-r", f"{rate:g}", "-rp", "1000", "-m", str(calls), "-l", str(limit),
        "-nostdin", "-buff_size", str(opts.buff_size),
        # an unexpected message fails the call without SIPp sending a BYE of its own
        "-default_behaviors", "all,-bye",
        "-timeout", f"{max(1, round(timeout_s))}s",
        "-trace_stat", "-stf", "stat.csv", "-fd", opts.stat_period,
        "-trace_err", "-error_file", "client_errors.log",
    ]
    if trace_rtt:
        argv += ["-trace_rtt", "-rtt_freq", str(opts.rtt_freq)]
    return argv


def server_argv(opts: SippOptions, *, scenario: Path, local_port: int, media_port: int,
                timeout_s: float) -> list[str]:
    """A UAS answering whatever comes; stopped with SIGUSR1 when the clients are done."""
    return [
        opts.binary, "-sf", str(scenario), "-i", opts.local_ip, "-p", str(local_port),
        "-mp", str(media_port), "-nostdin", "-buff_size", str(opts.buff_size),
        "-default_behaviors", "all,-bye",
        "-timeout", f"{max(1, round(timeout_s))}s",
        "-trace_stat", "-stf", "stat.csv", "-fd", opts.stat_period,
        "-trace_err", "-error_file", "server_errors.log",
    ]


class SippProcess:
    """One running SIPp; `finish` reaps it with its rusage and parses its files."""

    def __init__(self, role: str, argv: list[str], workdir: Path) -> None:
        self.role = role
        self.argv = argv
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=(workdir / "stderr.txt").open("wb"),
                                     start_new_session=True)
        self._reaped: tuple[int, float, float] | None = None  # returncode, wall, cpu

    def poll(self) -> bool:
        """True once the process has exited (and is reaped)."""
        if self._reaped is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return False
        rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = rc
        self._reaped = (rc, time.monotonic() - self.started, usage.ru_utime + usage.ru_stime)
        return True

    def wait(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.poll():
                return True
            time.sleep(0.02)
        return self.poll()

    def signal(self, sig: int) -> None:
        if self._reaped is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def finish(self, deadline: float) -> SippProcessResult:
        """Wait until `deadline`, then SIGUSR1 (SIPp's graceful stop), then SIGKILL."""
        killed = False
        if not self.wait(deadline):
            self.signal(signal.SIGUSR1)
            if not self.wait(time.monotonic() + 3):
                killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.wait(time.monotonic() + 5)
        rc, wall, cpu = self._reaped if self._reaped is not None else (None, 0.0, 0.0)
        return SippProcessResult(
            role=self.role, argv=self.argv, returncode=rc, wall_s=wall, cpu_s=cpu,
            stats=read_stats(self.workdir / "stat.csv"), rtt_ms=read_rtt(self.workdir),
            workdir=self.workdir, killed=killed,
        )


def read_stats(path: Path) -> SippStats:
    """Counters from the last row of a -trace_stat file (empty when SIPp never wrote one)."""
    try:
        with path.open(newline="", errors="replace") as fh:
            rows = [r for r in csv.reader(fh, delimiter=";") if r]
    except OSError:
        return SippStats()
    if len(rows) < 2:
        return SippStats()
    header, last = rows[0], rows[-1]
    values = dict(zip(header, last, strict=False))
    counters: dict[str, int] = {}
    for name, column in COUNTERS.items():
        raw = values.get(column, "")
        try:
            counters[name] = int(float(raw))
        except ValueError:
            continue
    curve: list[tuple[float, int]] = []
    for row in rows[1:]:
        v = dict(zip(header, row, strict=False))
        try:
            start = _epoch(v["StartTime"])
            now = _epoch(v["CurrentTime"])
            curve.append((now - start, int(v["TotalCallCreated"])))
        except (KeyError, ValueError):
            continue
    return SippStats(counters, curve)


def _epoch(stamp: str) -> float:
    """SIPp writes times as 'date<TAB>time<TAB>epoch.micro'; the last field is what we need."""
    return float(stamp.split("\t")[-1])


def read_rtt(workdir: Path) -> dict[int, list[float]]:
    """Response times (ms) per rtd number from every *_rtt.csv in `workdir`."""
    samples: dict[int, list[float]] = {}
    for path in sorted(workdir.glob("*_rtt.csv")):
        with path.open(errors="replace") as fh:
            for line in fh:
                parts = line.strip().split(";")
                if len(parts) != 3 or not parts[2].isdigit():
                    continue  # header or torn line
                try:
                    samples.setdefault(int(parts[2]), []).append(float(parts[1]))
                except ValueError:
                    continue
    return samples


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def sipp_version(binary: str = "sipp") -> str:
    try:
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except OSError:
        return "unknown"
    for line in out.splitlines():
        if "SIPp v" in line:
            return line.strip()
    return "unknown"

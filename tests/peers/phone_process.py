"""Drive `tests.peers.pjphone_cli` as a subprocess and wait for its JSON events.

A reader thread turns stdout lines into dicts on a queue; `expect()` waits for the first event
matching given fields, keeping every event seen in `events` so a failing test can print them.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.peers.accounts import SipAccount

REPO_ROOT = Path(__file__).resolve().parents[2]


class PhoneProcessError(AssertionError):
    """An expected event did not arrive; the message carries everything the phone said."""


class PhoneProcess:
    """A pjsua2 phone in its own process (one Endpoint per process)."""

    def __init__(
        self,
        account: SipAccount | None,
        workdir: Path,
        *,
        name: str = "phone",
        bind: str = "127.0.0.1",
        answer: str = "200",
        answer_after: float = 0.0,
        hangup_after: float | None = None,
        max_seconds: float = 60.0,
        extra_args: list[str] | None = None,
        idle: Callable[[], None] | None = None,
    ) -> None:
        """`idle` runs repeatedly while `expect()` waits: pass the in-process phone's pump, or
        that phone (threadCnt=0) stops answering while the test waits on this one."""
        self.name = name
        self._idle = idle
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.log_file = workdir / f"{name}.pjsip.log"
        self.stderr_file = workdir / f"{name}.stderr"
        cmd = [
            sys.executable,
            "-m",
            "tests.peers.pjphone_cli",
            "--bind",
            bind,
            "--answer",
            answer,
            "--answer-after",
            str(answer_after),
            "--max-seconds",
            str(max_seconds),
            "--log-file",
            str(self.log_file),
            "--user-agent",
            f"voiplab-test-{name}",
        ]
        if hangup_after is not None:
            cmd += ["--hangup-after", str(hangup_after)]
        if account is not None:
            cmd += [
                "--user",
                account.username,
                "--password",
                account.password,
                "--domain",
                account.domain,
                "--registrar",
                account.registrar,
                "--transport",
                account.transport,
                "--expires",
                str(account.expires),
            ]
            if account.algorithm:
                cmd += ["--algorithm", account.algorithm]
            if not account.register:
                cmd.append("--no-register")
        cmd += extra_args or []
        self._stderr = self.stderr_file.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "garbage", "line": line}
            self._queue.put(event)
        self._queue.put(None)

    def _drain(self, timeout: float) -> str:
        """Move one queued event into `events`: "event", "empty", or "closed" (stdout ended)."""
        try:
            item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return "empty"
        if item is None:
            self._queue.put(None)  # keep the end marker for later callers
            return "closed"
        self.events.append(item)
        return "event"

    def expect(self, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Return the first event (already seen or new) whose fields equal `match`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if all(ev.get(k) == v for k, v in match.items()):
                    return ev
            seen = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._idle is not None:
                self._idle()  # pumps for ~10 ms
                state = self._drain(0)
            else:
                state = self._drain(min(remaining, 0.1))
            if state == "closed":
                # the process is gone and every event it printed is in `events`
                for ev in self.events[seen:]:
                    if all(ev.get(k) == v for k, v in match.items()):
                        return ev
                break
        raise PhoneProcessError(
            f"{self.name}: no event matching {match} within {timeout}s\n{self.describe()}"
        )

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def describe(self) -> str:
        """Events, exit status and stderr tail, for assertion messages."""
        lines = [f"--- {self.name} events (rc={self.proc.poll()}) ---"]
        lines += [json.dumps(e, sort_keys=True) for e in self.events]
        with contextlib.suppress(OSError):
            tail = self.stderr_file.read_text(errors="replace")[-3000:]
            if tail.strip():
                lines += [f"--- {self.name} stderr (tail) ---", tail]
        return "\n".join(lines)

    def close(self, timeout: float = 5.0) -> int:
        """Ask the phone to quit (it unregisters and hangs up), then make sure it is gone."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                self.send(cmd="quit")
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        self._reader.join(2)
        while self._drain(0) == "event":
            pass
        self._stderr.close()
        return int(self.proc.returncode)

    def __enter__(self) -> PhoneProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Start and stop a real `voiplab serve` process for tests.

Used by tests/integration/conftest.py (on free loopback ports) and by the RFC 4475 driver inside a
network namespace. The server's stdout and stderr go to one log file; `log_since(offset)` lets a
fixture attach just the part a failing test produced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.peers.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def voiplab_command() -> list[str]:
    """How to run the `voiplab` console script of this checkout's environment."""
    script = Path(sys.executable).with_name("voiplab")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class GatewaySpec:
    """Where a gateway listens and what it serves; ports 0 are chosen free at `start()`."""

    workdir: Path
    domain: str = "voiplab.test"
    sip_host: str = "127.0.0.1"
    sip_port: int = 0
    api_host: str = "127.0.0.1"
    api_port: int = 0
    token: str = "test-token-not-secret"
    db_url: str | None = None  # default: SQLite file in workdir
    time_scale: float = 1.0
    extra_args: tuple[str, ...] = ()


class GatewayProcess:
    """A running `voiplab serve`; use as a context manager or call start()/stop()."""

    def __init__(self, spec: GatewaySpec) -> None:
        self.spec = spec
        self.sip_port = spec.sip_port or free_port(spec.sip_host)
        self.api_port = spec.api_port or free_port(spec.api_host, udp=False)
        self.db_url = spec.db_url or f"sqlite:///{spec.workdir / 'voiplab.db'}"
        self.log_path = spec.workdir / "voiplab-serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.command = [
            *voiplab_command(),
            "serve",
            "--sip",
            hostport(spec.sip_host, self.sip_port),
            "--api",
            hostport(spec.api_host, self.api_port),
            "--db",
            self.db_url,
            "--domain",
            spec.domain,
            "--time-scale",
            str(spec.time_scale),
            *spec.extra_args,
        ]

    @property
    def sip_address(self) -> str:
        """`host:port` of the SIP listener, as phones and SIPp want it."""
        return hostport(self.spec.sip_host, self.sip_port)

    @property
    def api_url(self) -> str:
        return f"http://{hostport(self.spec.api_host, self.api_port)}"

    def start(self, ready_timeout: float = 30.0) -> None:
        env = dict(os.environ)
        env["VOIPLAB_API_TOKEN"] = self.spec.token
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log = self.log_path.open("ab")
        self._log.write(f"$ {' '.join(self.command)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_healthy(ready_timeout)
        except GatewayError:
            self.stop()
            raise

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise GatewayError(f"voiplab serve exited with {self.proc.returncode}", self)
            try:
                with urllib.request.urlopen(self.api_url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise GatewayError(f"/healthz not 200 within {timeout}s (last: {last})", self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (clean shutdown flushes CDRs), then SIGKILL after `timeout`."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(5)
                self._log.write(b"\n[test harness: SIGKILL after SIGTERM timeout]\n")
        with contextlib.suppress(OSError):
            self._log.close()
        return self.proc.returncode

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int = 0, limit: int = 20000) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return text if len(text) <= limit else "[…]\n" + text[-limit:]

    def __enter__(self) -> GatewayProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GatewayError(RuntimeError):
    """The gateway did not come up; the message ends with its log."""

    def __init__(self, message: str, gateway: GatewayProcess) -> None:
        super().__init__(f"{message}\n--- voiplab serve log ---\n{gateway.log_since()}")

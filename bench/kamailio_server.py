"""Kamailio 5.6 (Debian package) as the reference server, config in bench/kamailio/.

The credentials are db_text files written before start: the usual `subscriber` table
and an `htable` table the config loads at start into an in-memory hash table of
user -> HA1, which the digest checks read (db_text has no index: auth_db on it scans
every row per lookup, ~10x the cost of a whole REGISTER exchange at 10,000 users, which
no production Kamailio pays). HA1 is precomputed, as a production registrar would store it, and Kamailio runs in the foreground (-DD) as
our child, logging to stderr (-E), with its runtime files in the run's directory.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.servers import ServerError, ServerInfo, stop_process, tail
from bench.sipping import wait_sip_ready
from bench.users import BenchUser, SipAccount

CONFIG = Path(__file__).resolve().parent / "kamailio" / "kamailio.cfg"
DBTEXT_SCHEMA = Path("/usr/share/kamailio/dbtext/kamailio/version")
SUBSCRIBER_HEADER = (
    "id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string)"
)
# htable's own table layout (/usr/share/kamailio/dbtext/kamailio/htable): the config loads
# it at start into the in-memory hash table "ha1" (user name -> HA1), which the digest
# checks read; db_text itself has no index, so auth_db on it would scan every row per lookup
HTABLE_HEADER = (
    "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int)"
)


class KamailioServer:
    name = "kamailio"

    def __init__(self, workdir: Path, sip_host: str, sip_port: int, domain: str,
                 binary: str = "/usr/sbin/kamailio", children: int = 2,
                 shm_mb: int = 1024, pkg_mb: int = 16) -> None:
        self.workdir = workdir
        self.sip_host = sip_host
        self.sip_port = sip_port
        self.domain = domain
        self.binary = binary
        self.children = children
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self.log_path = workdir / "kamailio.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._db = workdir / "dbtext"

    # --- provisioning -----------------------------------------------------------------------
    def _write_db(self, users: Sequence[BenchUser]) -> Path:
        db = self.workdir / "dbtext"
        db.mkdir(parents=True, exist_ok=True)
        if not DBTEXT_SCHEMA.exists():
            raise ServerError(f"{DBTEXT_SCHEMA} missing: is the Debian kamailio package installed?")
        shutil.copyfile(DBTEXT_SCHEMA, db / "version")
        rows = [SUBSCRIBER_HEADER]
        hashes = [HTABLE_HEADER]
        for i, u in enumerate(users, start=1):
            ha1 = hashlib.md5(f"{u.name}:{self.domain}:{u.password}".encode()).hexdigest()
            ha1b = hashlib.md5(f"{u.name}@{self.domain}:{self.domain}:{u.password}".encode()).hexdigest()
            rows.append(f"{i}:{u.name}:{self.domain}:{u.password}:{ha1}:{ha1b}")
            hashes.append(f"{i}:{u.name}:0:0:{ha1}:0")  # string key, string value, no expiry
        (db / "subscriber").write_text("\n".join(rows) + "\n")
        (db / "htable").write_text("\n".join(hashes) + "\n")
        return db

    def command(self, db: Path) -> list[str]:
        return [
            self.binary, "-DD", "-E",
            "-f", str(CONFIG),
            "-A", f'BENCH_DB_URL="text://{db}"',
            "-A", f'BENCH_DOMAIN="{self.domain}"',
            "-l", f"udp:{self.sip_host}:{self.sip_port}",
            "-n", str(self.children),
            "-m", str(self.shm_mb),
            "-M", str(self.pkg_mb),
            "-Y", str(self.workdir),
        ]

    def launch(self, users: Sequence[BenchUser]) -> dict[str, SipAccount]:
        if shutil.which(self.binary) is None:
            raise ServerError(f"{self.binary} not found (apt-get install kamailio)")
        self._db = self._write_db(users)
        cmd = self.command(self._db)
        check = subprocess.run([*cmd[:1], "-c", *cmd[3:]], capture_output=True, text=True,
                               timeout=30, check=False)
        if check.returncode != 0:
            raise ServerError("kamailio config check failed:\n" + check.stderr[-3000:])
        self._start()
        return {u.name: SipAccount(username=u.name, password=u.password, dial=u.name)
                for u in users}

    def _start(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(self.command(self._db), stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        if not wait_sip_ready(self.sip_host, self.sip_port, timeout=15):
            self.stop()
            raise ServerError("kamailio did not answer OPTIONS within 15 s:\n" + self.log_tail())

    def restart(self) -> None:
        self.stop()
        self._start()

    # --- process ----------------------------------------------------------------------------
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError("kamailio not started")
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def info(self) -> ServerInfo:
        try:
            out = subprocess.run([self.binary, "-v"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout
            first = out.splitlines()[0] if out else ""
            version = first.removeprefix("version: ").removeprefix("kamailio ").strip() or "unknown"
        except OSError:
            version = "unknown"
        return ServerInfo(
            name=self.name, version=version, sip=f"{self.sip_host}:{self.sip_port}",
            details={
                "config": "bench/kamailio/kamailio.cfg",
                "udp_workers": str(self.children),
                "auth": "auth (pv_www/proxy_authenticate), HA1 precomputed, from an htable "
                        "loaded from db_text at start; qop=auth, MD5",
                "usrloc": "in memory (db_mode 0)",
                "shm_mb": str(self.shm_mb),
            },
        )

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)

"""voiplab as a server under test: `voiplab serve` as a child process, provisioned over HTTP.

Provisioning goes through the public API only (what an ops script would do):
account -> one location -> one user per bench user -> all devices in one bulk import
(`POST /accounts/{id}/devices:bulk`; the registering users' lines 16 to a Yealink T54W,
everyone else a softphone) -> per device: location, activate. The bulk import returns each
line's generated SIP username and password once; those are what SIPp uses. Field names are fitted to the live
/openapi.json, so a renamed optional civic field does not break the bench; a missing
path or a rejected request stops the voiplab run with the server's answer.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.servers import ServerError, ServerInfo, stop_process, tail
from bench.sipping import wait_sip_ready
from bench.users import BenchUser, SipAccount

API = "/api/v1"
REQUIRED_PATHS = (
    f"{API}/accounts",
    f"{API}/accounts/{{account_id}}/users",
    f"{API}/accounts/{{account_id}}/locations",
    f"{API}/accounts/{{account_id}}/devices",
    f"{API}/devices/{{device_id}}/location",
    f"{API}/devices/{{device_id}}/activate",
)
BULK_PATH = f"{API}/accounts/{{account_id}}/devices:bulk"
# The registering users' lines sit on multi-line desk phones (Yealink T54W: 16 SIP
# accounts), so 10,000 users need 625 devices and as many location/activate calls;
# callers, callees and the latency probe keep a softphone each.
PHONE_PROFILE = "yealink-t54w"
PHONE_OUI = "001565"
PHONE_MAX_LINES = 16
# The R27 flood guard counts call attempts per calling line and per dialled number (default
# 60 per 10 s). The bench funnels thousands of calls per second through a few dozen lines and,
# in the default --digest-uri mode, one callee per SIPp process: traffic the guard exists to
# stop. Its thresholds are raised (the guard still runs and counts on every call, so its cost
# is measured); every other policy keeps its defaults. Override with --voiplab-env.
BENCH_ENV = {
    "VOIPLAB_FLOOD_PER_LINE": "100000000",
    "VOIPLAB_FLOOD_PER_CALLEE": "100000000",
}
LOCATION = {
    "name": "bench desk", "country": "US", "a1": "CA", "a3": "Springfield", "rd": "Main St",
    "hno": "1", "pc": "90210", "callback_number": "+15555550100",
}


class Api:
    """Minimal JSON client on one keep-alive connection (stdlib only: the bench must not
    depend on what the project under test happens to install)."""

    def __init__(self, host: str, port: int, token: str, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def clone(self) -> Api:
        """Another client for the same server and token, on its own connection (one per thread)."""
        other = Api(self.host, self.port, "", self.timeout)
        other.headers = dict(self.headers)
        return other

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             auth: bool = True) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = self.headers if auth else {}
        for attempt in (1, 2):  # one reconnect if the server closed the idle connection
            conn = self._connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
                continue
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw.decode(errors="replace")
            return resp.status, payload
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, payload = self.call(method, path, body)
        if status // 100 != 2:
            raise ServerError(f"{method} {path} {json.dumps(body)} -> {status}: {str(payload)[:1500]}")
        return payload


def _request_properties(openapi: dict[str, Any], path: str) -> set[str] | None:
    """Property names of the JSON body a POST on `path` takes (None when not described)."""
    try:
        schema = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    except (KeyError, TypeError):
        return None
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = openapi.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
    props = schema.get("properties")
    return set(props) if isinstance(props, dict) else None


def fit_to_schema(payload: dict[str, Any], properties: set[str] | None) -> dict[str, Any]:
    """Rename keys to the schema's spelling (case-insensitive) and drop keys it lacks, so a
    request validated with extra="forbid" still passes when optional names differ."""
    if properties is None:
        return payload
    by_lower = {p.lower(): p for p in properties}
    return {by_lower[k.lower()]: v for k, v in payload.items() if k.lower() in by_lower}


def device_batch(users: Sequence[tuple[int, BenchUser]], lines_per_phone: int) -> list[dict[str, Any]]:
    """Bulk-import rows: registering users (role "register") packed `lines_per_phone` to a
    desk phone, everyone else on a softphone of their own; unique MACs by construction."""
    if not 1 <= lines_per_phone <= PHONE_MAX_LINES:
        raise ValueError(f"lines per phone must be 1..{PHONE_MAX_LINES}")
    packed = [uid for uid, u in users if u.role == "register"]
    devices: list[dict[str, Any]] = []
    for n, start in enumerate(range(0, len(packed), lines_per_phone)):
        ids = packed[start:start + lines_per_phone]
        devices.append({"hardware_profile": PHONE_PROFILE, "name": f"bench phone {n}",
                        "mac": f"{PHONE_OUI}{n:06x}", "lines": [{"user_id": i} for i in ids]})
    for uid, u in users:
        if u.role != "register":
            devices.append({"hardware_profile": "softphone-desktop", "name": f"bench {u.name}",
                            "lines": [{"user_id": uid}]})
    return devices


class VoiplabServer:
    name = "voiplab"

    def __init__(self, workdir: Path, sip_host: str, sip_port: int, api_port: int, domain: str,
                 binary: Path, extra_args: Sequence[str] = (),
                 env: dict[str, str] | None = None, lines_per_phone: int = PHONE_MAX_LINES) -> None:
        self.workdir = workdir
        self.lines_per_phone = lines_per_phone
        self.provisioned = ""
        self.sip_host = sip_host
        self.sip_port = sip_port
        self.api_port = api_port
        self.domain = domain
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self.env = {**BENCH_ENV, **(env or {})}
        self.token = secrets.token_urlsafe(24)
        self.log_path = workdir / "voiplab.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._help = ""

    def command(self) -> list[str]:
        cmd = [
            str(self.binary), "serve",
            "--sip", f"{self.sip_host}:{self.sip_port}",
            "--api", f"{self.sip_host}:{self.api_port}",
            "--db", f"sqlite:///{self.workdir / 'bench.db'}",
            "--domain", self.domain,
        ]
        # Same footing as the Kamailio config: MD5 only (SIPp's digest is MD5) and
        # warnings-only logging. Passed only if this voiplab has the options.
        if "--digest" in self._help:
            cmd += ["--digest", "MD5"]
        if "--log-level" in self._help:
            cmd += ["--log-level", "WARNING"]
        if "--data-dir" in self._help:
            cmd += ["--data-dir", str(self.workdir)]
        return cmd + list(self.extra_args)

    def _start(self) -> None:
        if not self.binary.exists():
            raise ServerError(f"{self.binary} not found (run `make venv` first)")
        try:
            self._help = subprocess.run([str(self.binary), "serve", "--help"], capture_output=True,
                                        text=True, timeout=60, check=False,
                                        env={**os.environ, "COLUMNS": "200"}).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerError(f"`voiplab serve --help` failed: {exc}") from exc
        env = {**os.environ, **self.env, "VOIPLAB_API_TOKEN": self.token}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env, cwd=self.workdir,
                                          start_new_session=True)
        api = Api(self.sip_host, self.api_port, self.token, timeout=2.0)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise ServerError(f"voiplab exited with {self._proc.returncode}:\n" + self.log_tail())
                try:
                    status, _ = api.call("GET", "/healthz", auth=False)
                    if status == 200:
                        break
                except OSError:
                    api.close()
                time.sleep(0.2)
            else:
                raise ServerError("voiplab /healthz did not answer 200 within 60 s:\n" + self.log_tail())
        finally:
            api.close()
        if not wait_sip_ready(self.sip_host, self.sip_port, timeout=15):
            raise ServerError("voiplab did not answer SIP OPTIONS within 15 s:\n" + self.log_tail())

    def restart(self) -> None:
        """Same database, so the provisioned devices and their credentials survive."""
        self.stop()
        self._start()

    def launch(self, users: Sequence[BenchUser]) -> dict[str, SipAccount]:
        self._start()
        try:
            return self._provision(users)
        except Exception:
            self.stop()
            raise

    def _provision(self, users: Sequence[BenchUser]) -> dict[str, SipAccount]:
        t0 = time.monotonic()
        api = Api(self.sip_host, self.api_port, self.token, timeout=600.0)
        try:
            status, openapi = api.call("GET", "/openapi.json", auth=False)
            if status != 200 or not isinstance(openapi, dict):
                raise ServerError(f"GET /openapi.json -> {status}")
            missing = [p for p in (*REQUIRED_PATHS, BULK_PATH) if p not in openapi.get("paths", {})]
            if missing:
                raise ServerError("provisioning API lacks " + ", ".join(missing))
            props = {p: _request_properties(openapi, p) for p in REQUIRED_PATHS}

            def post(template: str, body: dict[str, Any] | None, **ids: int) -> Any:
                path = template.format(**ids)
                fitted = fit_to_schema(body, props[template]) if body is not None else None
                return api.ok("POST", path, fitted)

            account = post(f"{API}/accounts", {"name": f"bench-{secrets.token_hex(3)}",
                                               "plan": "connect", "region": "US"})
            account_id = int(account["id"])
            location = post(f"{API}/accounts/{{account_id}}/locations", dict(LOCATION),
                            account_id=account_id)
            location_id = int(location["id"])
            # One user per bench user (the API has no bulk form for users: ~5 ms each) ...
            user_ids: dict[int, BenchUser] = {}
            for u in users:
                user = post(f"{API}/accounts/{{account_id}}/users", {
                    "named_user_id": f"{u.name}@{self.domain}",
                    "display_name": f"Bench {u.name}",
                    "extension": u.extension,
                }, account_id=account_id)
                user_ids[int(user["id"])] = u
            # ... then every device with its lines in one bulk import, which returns each
            # line's generated SIP username and password (shown once, as on single creation).
            devices = device_batch(list(user_ids.items()), self.lines_per_phone)
            created = api.ok("POST", BULK_PATH.format(account_id=account_id),
                             {"devices": devices, "all_or_nothing": True})
            if int(created.get("created", 0)) != len(devices):
                raise ServerError(f"bulk import created {created.get('created')} of {len(devices)} "
                                  f"devices: {str(created.get('errors'))[:1500]}")
            accounts: dict[str, SipAccount] = {}
            for device in created["devices"]:
                # a device is activated only once its emergency location is known (R12)
                post(f"{API}/devices/{{device_id}}/location", {"location_id": location_id},
                     device_id=int(device["id"]))
                post(f"{API}/devices/{{device_id}}/activate", None, device_id=int(device["id"]))
                for line in device["lines"]:
                    u = user_ids[int(line["user_id"])]
                    accounts[u.name] = SipAccount(username=str(line["sip_username"]),
                                                  password=str(line["sip_password"]),
                                                  dial=u.extension)
            lost = [u.name for u in users if u.name not in accounts]
            if lost:
                raise ServerError(f"no line came back for {len(lost)} users, e.g. {lost[:3]}")
            self.provisioned = (f"{len(users)} users, {len(devices)} devices "
                                f"({sum(1 for d in devices if d.get('mac'))} {PHONE_PROFILE} with up to "
                                f"{self.lines_per_phone} lines for the registering users, softphones "
                                f"for the others) in {time.monotonic() - t0:.0f} s")
            return accounts
        finally:
            api.close()

    def pid(self) -> int:
        if self._proc is None:
            raise ServerError("voiplab not started")
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def info(self) -> ServerInfo:
        version = "unknown"
        try:
            from importlib.metadata import version as dist_version
            version = dist_version("voiplab")
        except Exception:
            pass
        return ServerInfo(
            name=self.name, version=version, sip=f"{self.sip_host}:{self.sip_port}",
            details={"command": " ".join(self.command()).replace(str(self.workdir), "<tmp>")
                     .replace(str(Path.cwd()) + "/", ""),
                     "environment": " ".join(f"{k}={v}" for k, v in sorted(self.env.items())),
                     "processes": "1 (asyncio, uvloop)",
                     "provisioning": self.provisioned},
        )

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, grace=10.0)

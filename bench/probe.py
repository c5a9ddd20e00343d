"""Latency probe: one authenticated REGISTER exchange every few milliseconds, timed to the µs.

SIPp's response-time marks move in clock steps (4 ms on the bench machine), too coarse
for "p99 added latency ≤ 5 ms". This probe runs in its own process, from its own UDP
socket, as its own pre-provisioned user, one exchange at a time:

    REGISTER → 401 (challenge) → REGISTER + Authorization (MD5, qop=auth) → 200

and times it with `time.perf_counter_ns`: the whole exchange (both round trips, as
SIPp's REGISTER mark) and each request → final response separately. The harness runs
it once against the idle server (the baseline: loopback, kernel and the probe's own
Python wake-ups) and once alongside the half-load step; the difference is what the load
adds. An exchange unanswered within `--timeout` is counted as lost, not as a sample.

    .venv/bin/python -m bench.probe --server 127.0.0.1:5060 --username u --password p \\
        --domain bench.test --duration 5 --interval-ms 20 [--json out.json]

The digest `uri=` equals the Request-URI (voiplab checks this; Kamailio does not care).
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.sip.digest import build_credentials, parse_challenge

PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None for no samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) / 100)))
    return ordered[rank - 1]


def summarize(samples_ns: Sequence[int]) -> dict[str, Any]:
    """p50/p90/p99/max/mean in ms, rounded to the µs; None values when there are no samples."""
    ms = [s / 1e6 for s in samples_ns]
    out: dict[str, Any] = {"n": len(ms)}
    for q in PERCENTILES:
        v = percentile(ms, q)
        out[f"p{q}_ms"] = round(v, 3) if v is not None else None
    out["max_ms"] = round(max(ms), 3) if ms else None
    out["mean_ms"] = round(sum(ms) / len(ms), 3) if ms else None
    return out


@dataclass
class ProbeResult:
    exchanges_ns: list[int] = field(default_factory=list)  # whole REGISTER exchange
    round_trips_ns: list[int] = field(default_factory=list)  # each request -> final response
    lost: int = 0  # no final answer within the timeout
    errors: dict[str, int] = field(default_factory=dict)  # unexpected status -> count
    interval_ms: float = 0.0
    duration_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"exchange": summarize(self.exchanges_ns), "round_trip": summarize(self.round_trips_ns),
                "lost": self.lost, "errors": dict(self.errors), "interval_ms": self.interval_ms,
                "duration_s": round(self.duration_s, 2)}


def register_request(*, server: str, local: str, username: str, domain: str, call_id: str,
                     cseq: int, branch: str, tag: str, expires: int,
                     authorization: str | None = None) -> bytes:
    """One REGISTER of the probe's line; Request-URI = sip:<server host:port>."""
    lines = [
        f"REGISTER sip:{server} SIP/2.0",
        f"Via: SIP/2.0/UDP {local};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{username}@{domain}>;tag={tag}",
        f"To: <sip:{username}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{username}@{local}>",
        f"Expires: {expires}",
        "User-Agent: voiplab-bench-probe",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_response(data: bytes) -> tuple[int, dict[str, str]] | None:
    """Status code and headers (lower-case names, first value) of a SIP response; None otherwise."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit():
        return None
    headers: dict[str, str] = {}
    compact = {"i": "call-id", "v": "via"}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        headers.setdefault(compact.get(key, key), value.strip())
    return int(parts[1]), headers


class Probe:
    def __init__(self, host: str, port: int, username: str, password: str, domain: str,
                 timeout: float = 1.0, expires: int = 3600) -> None:
        self.server = f"{host}:{port}"
        self.username, self.password, self.domain = username, password, domain
        self.timeout, self.expires = timeout, expires
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.connect((host, port))
        lhost, lport = self.sock.getsockname()[:2]
        self.local = f"{lhost}:{lport}"
        self.call_id = f"probe-{secrets.token_hex(8)}@{lhost}"
        self.tag = secrets.token_hex(6)
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def _transaction(self, authorization: str | None) -> tuple[int, dict[str, str], int] | None:
        """Send one REGISTER, wait for its final response: (status, headers, elapsed ns)."""
        self.cseq += 1
        branch = "z9hG4bK" + secrets.token_hex(8)
        msg = register_request(server=self.server, local=self.local, username=self.username,
                               domain=self.domain, call_id=self.call_id, cseq=self.cseq,
                               branch=branch, tag=self.tag, expires=self.expires,
                               authorization=authorization)
        t0 = time.perf_counter_ns()
        self.sock.send(msg)
        deadline = t0 + int(self.timeout * 1e9)
        while True:
            left = (deadline - time.perf_counter_ns()) / 1e9
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            t1 = time.perf_counter_ns()
            parsed = parse_response(data)
            if parsed is None:
                continue
            status, headers = parsed
            if branch not in headers.get("via", "") or status < 200:
                continue  # a late answer to an earlier exchange, or a provisional
            return status, headers, t1 - t0

    def exchange(self, result: ProbeResult) -> None:
        first = self._transaction(None)
        if first is None:
            result.lost += 1
            return
        status, headers, rt1 = first
        if status == 200:  # a server that did not challenge: one round trip is the exchange
            result.round_trips_ns.append(rt1)
            result.exchanges_ns.append(rt1)
            return
        challenge = headers.get("www-authenticate")
        if status != 401 or challenge is None:
            result.errors[str(status)] = result.errors.get(str(status), 0) + 1
            return
        uri = f"sip:{self.server}"
        auth = build_credentials(parse_challenge(challenge), self.username, self.password,
                                 "REGISTER", uri, cnonce=secrets.token_hex(8))
        second = self._transaction(auth)
        if second is None:
            result.lost += 1
            return
        status2, _, rt2 = second
        if status2 != 200:
            result.errors[str(status2)] = result.errors.get(str(status2), 0) + 1
            return
        result.round_trips_ns += [rt1, rt2]
        result.exchanges_ns.append(rt1 + rt2)


def run(host: str, port: int, username: str, password: str, domain: str, duration_s: float,
        interval_ms: float, timeout: float = 1.0) -> ProbeResult:
    """Exchanges every `interval_ms` (start to start; never two at once) for `duration_s`."""
    probe = Probe(host, port, username, password, domain, timeout=timeout)
    result = ProbeResult(interval_ms=interval_ms)
    interval = interval_ms / 1000
    try:
        start = time.monotonic()
        due = start
        while time.monotonic() - start < duration_s:
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            probe.exchange(result)
            due = max(due + interval, time.monotonic())
        result.duration_s = time.monotonic() - start
    finally:
        probe.close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="host:port (UDP)")
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--domain", required=True, help="SIP domain (From/To)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds")
    p.add_argument("--interval-ms", type=float, default=20.0, help="start-to-start spacing")
    p.add_argument("--timeout", type=float, default=1.0, help="per request, seconds")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait before the first exchange")
    p.add_argument("--json", help="write the result here (else stdout)")
    args = p.parse_args(argv)
    if args.delay > 0:
        time.sleep(args.delay)
    host, _, port = args.server.rpartition(":")
    result = run(host, int(port), args.username, args.password, args.domain, args.duration,
                 args.interval_ms, args.timeout).to_json()
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0 if result["exchange"]["n"] else 1


if __name__ == "__main__":
    sys.exit(main())

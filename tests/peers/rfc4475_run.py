"""RFC 4475 run *inside* a loopback-only network namespace: gateway + sender, JSON out.

Started by tests/integration/test_rfc4475_netns.py as
`ip netns exec voiplab-XXXX python -m tests.peers.rfc4475_run …` (or under `unshare -rn` when
`ip netns` is refused). It refuses to run when the namespace has any interface besides `lo`, so
the foreign addresses in the torture messages can never reach a real network.

Steps: bring `lo` up; start `voiplab serve` on a free port; OPTIONS probe; every message of
INDEX.tsv (+ INDEX-extra.tsv); OPTIONS probe again; stop the gateway (SIGTERM); print one JSON
object with outcomes, probes, the gateway's exit status and the tail of its log.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from tests.peers.api import API
from tests.peers.gateway import GatewayError, GatewayProcess, GatewaySpec
from tests.peers.rfc4475 import LISTEN_PORTS, TortureSender, format_table, judge, load_messages

DEFAULT_MESSAGES = Path(__file__).resolve().parents[1] / "data" / "rfc4475"


def interfaces() -> list[str]:
    """Interfaces of *this* network namespace (netlink; /sys may still show the host's)."""
    return sorted(name for _, name in socket.if_nameindex())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rfc4475_run", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=Path, default=DEFAULT_MESSAGES)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--domain", default="example.com")
    p.add_argument("--max-wait", type=float, default=1.0, help="seconds to wait per message")
    p.add_argument("--only", nargs="*", default=None, help="message names to send")
    p.add_argument(
        "--gateway-arg", action="append", default=[], help="extra `voiplab serve` argument"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False, capture_output=True)
    ifaces = interfaces()
    if ifaces != ["lo"]:
        print(json.dumps({"error": f"refusing to run: interfaces {ifaces} besides lo"}))
        return 3
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="voiplab-rfc4475-"))
    workdir.mkdir(parents=True, exist_ok=True)
    messages = load_messages(args.messages)
    if args.only:
        messages = [m for m in messages if m.name in set(args.only)]
    result: dict[str, Any] = {"interfaces": ifaces, "workdir": str(workdir)}
    spec = GatewaySpec(workdir=workdir, domain=args.domain, extra_args=tuple(args.gateway_arg))
    gateway = GatewayProcess(spec)
    if gateway.sip_port in LISTEN_PORTS:  # the sender owns those (Via default port 5060 etc.)
        gateway = GatewayProcess(dataclasses.replace(spec, sip_port=5080))
    result["gateway_command"] = gateway.command
    try:
        gateway.start()
    except GatewayError as exc:
        result["error"] = f"gateway did not start: {exc}"
        print(json.dumps(result))
        return 4
    try:
        with TortureSender(("127.0.0.1", gateway.sip_port), max_wait=args.max_wait) as sender:
            pre = sender.probe()
            result["pre_probe"] = pre.start_line if pre else None
            # a gateway that does not answer a plain OPTIONS makes the table meaningless
            outcomes = sender.run(messages) if pre is not None else []
            result["alive_after_messages"] = gateway.alive()
            post = sender.probe()
            result["post_probe"] = post.start_line if post else None
            result["live_calls"] = _api_get(gateway, f"{API}/calls")
            result["registrations"] = _api_get(gateway, f"{API}/registrations")
    finally:
        result["gateway_rc"] = gateway.stop()
    log = gateway.log_since(0, limit=400_000)
    result["tracebacks"] = _tracebacks(log)
    result["log_tail"] = log[-6000:]
    result["outcomes"] = [
        {
            "name": o.message.name,
            "section": o.message.section,
            "expected": o.message.expected,
            "codes": o.codes(),
            "start_lines": [r.start_line for r in o.replies],
            "ports": sorted({f"{r.proto}:{r.port}" for r in o.replies}),
            "retransmission_of": o.retransmission_of,
            "ok": judge(o).ok,
            "why": judge(o).why,
        }
        for o in outcomes
    ]
    result["table"] = format_table(outcomes)
    print(json.dumps(result))
    return 0


def _api_get(gateway: GatewayProcess, path: str) -> Any:
    """Live state after the torture run (a leaked call or binding shows up here)."""
    req = urllib.request.Request(
        gateway.api_url + path, headers={"Authorization": f"Bearer {gateway.spec.token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError) as exc:
        return f"unavailable: {exc}"


def _tracebacks(log: str) -> list[str]:
    """Each Python traceback in the gateway's log (an exception escaped a handler)."""
    blocks = re.findall(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*.*", log)
    return [b[-2000:] for b in blocks[:10]]


if __name__ == "__main__":
    sys.exit(main())

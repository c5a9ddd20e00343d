"""Standalone simulated PSTN: ``python -m gateway.pstn --listen 127.0.0.1:5080 [--rule PATTERN=BEHAVIOUR]…``.

Why standalone too: a lab may point a phone or SIPp straight at the PSTN
simulator, or run it beside a gateway it does not share a process with.
Prints one JSON line per call record change on stdout; logs go to stderr.
Stops on SIGINT / SIGTERM.

BEHAVIOUR is a preset (answer, answer-hangup, ring-answer, ring, not-found,
no-answer, busy, congestion, decline) or JSON, e.g.
``--rule '*0199={"action": "answer", "hang_up_after": 10}'``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from typing import Any

from gateway.clock import LoopClock
from gateway.pstn.log import PstnCall, PstnLog
from gateway.pstn.rules import RuleBook
from gateway.pstn.server import PstnServer


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError("use HOST:PORT, e.g. 127.0.0.1:5080 or [::1]:5080")
    return host.strip("[]"), int(port)


def _rule(value: str) -> tuple[str, Any]:
    pattern, sep, behaviour = value.partition("=")
    if not sep or not pattern or not behaviour:
        raise argparse.ArgumentTypeError("use PATTERN=BEHAVIOUR, e.g. *0486=busy")
    behaviour = behaviour.strip()
    if behaviour.startswith("{"):
        try:
            return pattern.strip(), json.loads(behaviour)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"bad JSON behaviour: {exc}") from exc
    return pattern.strip(), behaviour


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gateway.pstn", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 5080), metavar="HOST:PORT",
                   help="UDP address to answer on (default 127.0.0.1:5080; port 0 picks one)")
    p.add_argument("--rule", type=_rule, action="append", default=[], metavar="PATTERN=BEHAVIOUR",
                   help="a run-time rule on top of the default table (repeatable)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="simulated seconds per real second for ring and hang-up delays")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    rules = RuleBook()
    for pattern, behaviour in args.rule:
        rules.set_rule(pattern, behaviour)
    log = PstnLog()

    def emit(call: PstnCall) -> None:
        sys.stdout.write(json.dumps(call.to_dict(log.media), sort_keys=True) + "\n")
        sys.stdout.flush()

    log.on_change = emit
    host, port = args.listen
    server = await PstnServer.start(host, port, clock=LoopClock(loop, args.time_scale), rules=rules, log=log)
    print(f"voiplab simulated PSTN listening on udp:{host}:{server.port} (RTP echo {server.media_port})",
          file=sys.stderr, flush=True)
    try:
        await stopping.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except (OSError, ValueError) as exc:
        print(f"pstn: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

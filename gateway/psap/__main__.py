"""Standalone PSAP simulator: ``python -m gateway.psap --listen 127.0.0.1:5070 [--expected FILE]``.

Prints one JSON line per call record change (verdict, checks, the PIDF-LO
received) on stdout, so a script can follow the calls; logs go to stderr.
Stops on SIGINT / SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from gateway.psap.checks import PsapConfig
from gateway.psap.log import ExpectedLocations, PsapCall, PsapLog
from gateway.psap.server import PsapServer


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError("use HOST:PORT, e.g. 127.0.0.1:5070 or [::1]:5070")
    return host.strip("[]"), int(port)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gateway.psap", description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 5070), metavar="HOST:PORT",
                   help="UDP address to answer on (default 127.0.0.1:5070; port 0 picks one)")
    p.add_argument("--expected", type=Path, metavar="FILE.json",
                   help='registered locations: {"<deviceID>": {"country": "US", …, "callback_number": "+1…"}}')
    p.add_argument("--mode", choices=("psap", "national_centre"), default="psap",
                   help="national_centre: every call is a national emergency call centre call (no location)")
    p.add_argument("--mismatch-status", type=int, choices=(200, 424), default=200,
                   help="answer for a valid location that differs from the registered one")
    p.add_argument("--answer-delay", type=float, default=0.0, metavar="SECONDS",
                   help="ring this long (180) before answering")
    p.add_argument("--no-legacy", action="store_true", help="accept only urn:service:sos[.x], not 911/112/…")
    p.add_argument("--max-pidf-age", type=float, default=86_400.0, metavar="SECONDS",
                   help="oldest PIDF-LO timestamp accepted (0 disables the check)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    expected = ExpectedLocations.from_json(args.expected) if args.expected else ExpectedLocations()

    def emit(call: PsapCall) -> None:
        sys.stdout.write(json.dumps(call.to_dict(), sort_keys=True) + "\n")
        sys.stdout.flush()

    config = PsapConfig(mode=args.mode, legacy_mode=not args.no_legacy, mismatch_status=args.mismatch_status,
                        answer_delay=args.answer_delay, max_pidf_age=args.max_pidf_age or None)
    host, port = args.listen
    server = await PsapServer.start(host, port, lookup=expected.get, config=config,
                                    log=PsapLog(on_change=emit))
    print(f"voiplab PSAP simulator listening on udp:{host}:{server.port} ({args.mode})",
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
        print(f"psap: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

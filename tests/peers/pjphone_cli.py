"""The pjsua2 test phone as a process: one JSON object per line out, JSON commands in.

A second pjsua2 phone cannot live in the test process (one Endpoint per process), so tests start
this CLI with `python -m tests.peers.pjphone_cli …` (see `tests.peers.phone_process`).

stdout: one JSON event per line (`ready`, `reg`, `incoming`, `call_state`, `media`, `error`,
`exit`); pjlib's own noise goes to stderr. stdin: JSON commands, one per line:
`{"cmd": "call", "uri": "sip:…"}`, `{"cmd": "hangup"}`, `{"cmd": "answer", "call": 0, "code": 200}`,
`{"cmd": "hold", "call": 0}`, `{"cmd": "unhold", "call": 0}`, `{"cmd": "unregister"}`,
`{"cmd": "quit"}`. EOF on stdin also quits.

Exit status: 0, or 1 when `--expect-reg CODE` was given and the first final REGISTER answer
differed (so the CLI alone is a one-shot "does this account register?" check), 2 on bad use.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tests.peers.pjphone import AnswerPolicy, PhoneConfig, PjPhone, SipAccount


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pjphone_cli", description=__doc__.split("\n")[0])
    p.add_argument("--bind", default="127.0.0.1", help="local address (IPv6 without brackets ok)")
    p.add_argument("--port", type=int, default=0, help="local SIP port (0: any)")
    p.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    p.add_argument("--user", help="SIP username (omit for a phone that only answers)")
    p.add_argument("--password", default="")
    p.add_argument("--domain", default="")
    p.add_argument("--registrar", default="", help="host:port of the registrar / outbound proxy")
    p.add_argument("--algorithm", choices=["MD5", "SHA-256"], default=None)
    p.add_argument("--no-register", action="store_true")
    p.add_argument("--expires", type=int, default=300)
    p.add_argument("--answer", default="200", help="final code for incoming calls, or 'none'")
    p.add_argument("--answer-after", type=float, default=0.0)
    p.add_argument("--hangup-after", type=float, default=None)
    p.add_argument("--call", default=None, help="call this URI once registered (or at once)")
    p.add_argument("--expect-reg", type=int, default=None)
    p.add_argument("--exit-after-reg", action="store_true")
    p.add_argument("--max-seconds", type=float, default=60.0, help="hard stop")
    p.add_argument("--user-agent", default="voiplab-test-pjsua2-cli")
    p.add_argument("--log-file", type=Path, default=None, help="pjsip log incl. SIP messages")
    return p


class _Out:
    """JSON-lines writer on the original stdout; fd 1 itself is pointed at stderr."""

    def __init__(self) -> None:
        self._stream: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)

    def __call__(self, event: dict[str, Any]) -> None:
        self._stream.write(json.dumps(event, sort_keys=True) + "\n")
        self._stream.flush()


def _read_commands(buffer: bytearray) -> tuple[list[dict[str, Any]], bool]:
    """Non-blocking read of complete JSON lines from stdin; returns (commands, eof)."""
    cmds: list[dict[str, Any]] = []
    ready, _, _ = select.select([0], [], [], 0)
    if not ready:
        return cmds, False
    chunk = os.read(0, 65536)
    if not chunk:
        return cmds, True
    buffer.extend(chunk)
    while b"\n" in buffer:
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        if line.strip():
            cmds.append(json.loads(line))
    return cmds, False


def _execute(phone: PjPhone, cmd: dict[str, Any]) -> bool:
    """Run one command; returns False when the phone should quit."""
    name = cmd.get("cmd")
    if name == "quit":
        return False
    if name == "call":
        phone.call(str(cmd["uri"]))
    elif name == "hangup":
        phone.hangup(cmd.get("call"), int(cmd.get("code", 0)))
    elif name == "answer":
        phone.answer(int(cmd["call"]), int(cmd.get("code", 200)))
    elif name == "hold":
        phone.hold(int(cmd["call"]))
    elif name == "unhold":
        phone.unhold(int(cmd["call"]))
    elif name == "unregister":
        phone.unregister()
    elif name == "status":
        phone.emit({"event": "status", "calls": phone.active_calls()})
    else:
        phone.emit({"event": "error", "error": f"unknown command {name!r}"})
    return True


def _host_for_uri(host: str) -> str:
    host = host.strip("[]")
    return f"[{host}]" if ":" in host else host


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = _Out()
    answer_code = None if args.answer == "none" else int(args.answer)
    config = PhoneConfig(
        bind_host=args.bind,
        sip_port=args.port,
        transport=args.transport,
        user_agent=args.user_agent,
        log_file=args.log_file,
        answer=AnswerPolicy(answer_code, args.answer_after, args.hangup_after),
    )
    phone = PjPhone(config, sink=out)
    status = 0
    try:
        phone.start()
        registering = bool(args.user and args.registrar) and not args.no_register
        # pjsua delivers incoming calls to Python only through an Account, so an answer-only
        # phone still gets a local, never-registering one
        local_domain = f"{_host_for_uri(args.bind)}:{phone.sip_port}"
        phone.add_account(
            SipAccount(
                username=args.user or "phone",
                password=args.password,
                domain=args.domain or local_domain,
                registrar=args.registrar,
                transport=args.transport,
                algorithm=args.algorithm,
                register=registering,
                expires=args.expires,
            )
        )
        status = _loop(phone, args, registering)
    except Exception as exc:  # reported as an event: the test reads stdout, not tracebacks
        out({"event": "error", "error": f"{type(exc).__name__}: {exc}"})
        status = 2
    finally:
        phone.close()
        out({"event": "exit", "status": status})
    return status


def _loop(phone: PjPhone, args: argparse.Namespace, registering: bool) -> int:
    deadline = time.monotonic() + args.max_seconds
    buffer = bytearray()
    called = False
    status = 0
    reg_seen = False
    while time.monotonic() < deadline:
        phone.pump(20)
        reg = next((e for e in phone.events if e["event"] == "reg" and e["code"] >= 200), None)
        if reg is not None and not reg_seen:
            reg_seen = True
            if args.expect_reg is not None and reg["code"] != args.expect_reg:
                status = 1
            if args.exit_after_reg:
                return status
        if args.call and not called and (reg_seen or not registering):
            called = True
            phone.call(args.call)
        cmds, eof = _read_commands(buffer)
        for cmd in cmds:
            if not _execute(phone, cmd):
                return status
        if eof:
            return status
    phone.emit({"event": "timeout", "max_seconds": args.max_seconds})
    return 1 if args.expect_reg is not None and not reg_seen else status


if __name__ == "__main__":
    sys.exit(main())

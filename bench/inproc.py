"""In-process cost of the gateway's hot paths, without sockets or SIPp.

``python -m bench.inproc [--profile] [--n N]`` drives the real ``SipCore`` (the
unit tests' harness: real directory on SQLite, ManualClock, sends captured)
with REGISTER exchanges (REGISTER → 401 → REGISTER + Authorization → 200) for
N distinct users, and times only the gateway's ``on_message`` calls, not the
client side that builds requests and answers challenges.  It is the quick
loop for profile-guided work; ``make bench`` is the measurement that counts.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import secrets
import tempfile
import time
from pathlib import Path

from gateway.serve import tune_gc
from gateway.sip.digest import Algorithm
from tests.gwharness import DOMAIN, Gateway, Phone, answer_challenge, request


def register_exchanges(gw: Gateway, phones: list[Phone], rounds: int) -> tuple[int, float]:
    uri = f"sip:{DOMAIN}"
    spent = 0.0
    count = 0
    clock = time.thread_time  # CPU time of this thread: steadier than wall time on a shared machine
    for _ in range(rounds):
        for phone in phones:
            call_id = f"reg-{phone.username}-{secrets.token_hex(3)}"
            data = request("REGISTER", uri, phone, call_id=call_id, cseq=phone.cseq,
                           extra=["Expires: 600"]).encode()
            phone.cseq += 1
            t0 = clock()
            gw.core.on_message(data, phone.peer)
            spent += clock() - t0
            challenge = gw.take()[0]
            auth = answer_challenge(challenge, phone, "REGISTER", uri, "www-authenticate")  # type: ignore[arg-type]
            data = request("REGISTER", uri, phone, call_id=call_id, cseq=phone.cseq,
                           extra=["Expires: 600", f"Authorization: {auth}"]).encode()
            phone.cseq += 1
            t0 = clock()
            gw.core.on_message(data, phone.peer)
            spent += clock() - t0
            final = gw.take()[0]
            assert getattr(final, "status", None) == 200, final
            count += 1
    return count, spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=200, help="distinct users")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--profile", action="store_true", help="cProfile the run; print the top functions")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(Path(tmp), algorithms=(Algorithm.MD5,))
        phones = [gw.phone(f"{2000 + i}") for i in range(args.n)]
        register_exchanges(gw, phones, 1)  # warm-up: first bindings, caches
        tune_gc()  # as `voiplab serve` does once started: start-up heap frozen, rarer gen-0 runs
        prof = cProfile.Profile() if args.profile else None
        if prof:
            prof.enable()
        count, spent = register_exchanges(gw, phones, args.rounds)
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(40)
        print(f"REGISTER exchanges: {count}, gateway CPU {spent * 1e6 / count:.1f} µs per exchange")


if __name__ == "__main__":
    main()

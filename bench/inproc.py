"""In-process cost of the gateway's hot paths, without sockets or SIPp.

``python -m bench.inproc [--scenario register|call|cdr|first-registration] [--rounds N] [--profile]`` drives
the real ``SipCore`` (the unit tests' harness: real directory on SQLite, ManualClock,
sends captured) with REGISTER exchanges (REGISTER → 401 → REGISTER + Authorization → 200)
or the bench's authenticated call (INVITE → 407 → ACK → INVITE → 100/200 → ACK → BYE →
200), and counts only the CPU of the gateway's ``on_message`` calls, not the client side
that builds requests and answers challenges; ``cdr`` times the call-record writer.
``first-registration`` is a lab's phones registering for the first time (``--n`` devices of
``--lines`` lines each, one REGISTER exchange per line, lines of a device back to back as
SIPp sends them), with the R13 fingerprint writer and the directory wired as ``voiplab
serve`` wires them: it reports the gateway's CPU and the whole process's (writer and
directory threads included) until every fingerprint is in the snapshot.  It is the quick
loop for profile-guided work; ``make bench`` is the measurement that counts.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gateway.policy import FloodGuard
from gateway.serve import WRITER_LINGER, tune_gc
from gateway.sip.digest import Algorithm
from gateway.sip.message import Request, Response
from gateway.transport import Peer
from tests.gwharness import DOMAIN, SDP, Gateway, Phone, answer, answer_challenge, request


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


def call_exchanges(gw: Gateway, pairs: list[tuple[Phone, Phone]], rounds: int) -> tuple[int, float]:
    """The bench's call: INVITE → 407 → ACK → INVITE + Proxy-Authorization → 100 → (callee) 200 →
    ACK → BYE → 200, record-routed; returns (calls, gateway CPU seconds)."""
    spent = 0.0
    count = 0
    clock = time.thread_time

    def feed(data: bytes, peer: Peer) -> None:
        nonlocal spent
        t0 = clock()
        gw.core.on_message(data, peer)
        spent += clock() - t0

    for _ in range(rounds):
        for caller, callee in pairs:
            call_id = secrets.token_hex(6)
            uri = f"sip:{callee.extension}@{DOMAIN}"
            to = f"<{uri}>"
            feed(request("INVITE", uri, caller, to=to, call_id=call_id, cseq=1, body=SDP,
                         branch="z9hG4bK1" + call_id).encode(), caller.peer)
            challenge = gw.take()[0]
            assert isinstance(challenge, Response) and challenge.status == 407, challenge
            feed(request("ACK", uri, caller, to=to, call_id=call_id, cseq=1, branch="z9hG4bK1" + call_id,
                         to_tag=challenge.to_tag).encode(), caller.peer)
            auth = answer_challenge(challenge, caller, "INVITE", uri, "proxy-authenticate")
            feed(request("INVITE", uri, caller, to=to, call_id=call_id, cseq=2, body=SDP,
                         branch="z9hG4bK2" + call_id, extra=[f"Proxy-Authorization: {auth}"]).encode(),
                 caller.peer)
            out = gw.take()
            leg = next(m for m in out if isinstance(m, Request))
            feed(answer(leg, callee, 200, "OK", tag="callee", body=SDP).encode(), callee.peer)
            ok = gw.take()[0]
            assert isinstance(ok, Response) and ok.status == 200, ok
            route = [f"Route: {v}" for v in ok.values("record-route")]
            feed(request("ACK", callee.contact, caller, to=to, to_tag="callee", call_id=call_id, cseq=2,
                         extra=route).encode(), caller.peer)
            gw.take()
            feed(request("BYE", callee.contact, caller, to=to, to_tag="callee", call_id=call_id, cseq=3,
                         extra=route).encode(), caller.peer)
            bye = gw.take()[0]
            assert isinstance(bye, Request) and bye.method == "BYE", bye
            feed(answer(bye, callee, 200, "OK", tag="callee").encode(), callee.peer)
            final = gw.take()[0]
            assert isinstance(final, Response) and final.status == 200, final
            count += 1
    return count, spent


def multi_line_phones(gw: Gateway, devices: int, lines: int) -> list[Phone]:
    """`devices` activated desk phones (Yealink T54W) of `lines` lines, each line its own user;
    the lines of a device share its address, as on a real phone."""
    from sqlmodel import Session

    from provisioning import services
    from provisioning.schemas import DeviceCreate, LineSpec, UserCreate

    phones: list[Phone] = []
    with Session(gw.engine) as s:
        env = gw._env(s)
        for d in range(devices):
            users = []
            for i in range(lines):
                ext = str(30000 + d * lines + i)
                user = services.create_user(env, gw.account_id, UserCreate(
                    named_user_id=f"pat.smith.{ext}@lab.test", display_name=f"Pat {ext}", extension=ext))
                users.append((user.id, ext))
            made = services.create_device(env, gw.account_id, DeviceCreate(
                hardware_profile="yealink-t54w", name=f"desk {d}", mac=f"001565{d:06x}",
                lines=[LineSpec(user_id=uid) for uid, _ in users]))
            device_id = made.device.id
            assert device_id is not None
            services.bind_location(env, device_id, gw.location_id)
            services.activate_device(env, device_id)
            peer = Peer("udp", "127.0.0.1", 20000 + d)
            for line, (_, ext) in zip(made.lines, users, strict=True):
                assert line.id is not None
                phones.append(Phone(line.sip_username, made.passwords[line.id], ext, device_id, peer))
    return phones


def first_registrations(gw: Gateway, phones: list[Phone]) -> tuple[int, float, float]:
    """Every line's first REGISTER exchange with R13 on: (exchanges, gateway CPU, process CPU
    until the snapshot shows every device's fingerprint)."""
    from gateway.outbox import BatchWriter
    from provisioning.e911_store import E911Store

    writer = BatchWriter(E911Store(gw.engine, bus=gw.bus).record_registrations, name="fingerprints",
                         linger=WRITER_LINGER)
    gw.registrar.on_fingerprint = writer.submit
    devices = {p.device_id for p in phones}
    t0 = time.process_time()
    count, spent = register_exchanges(gw, phones, 1)
    deadline = time.monotonic() + 600
    while any(gw.directory.snapshot.devices[d].last_fingerprint is None for d in devices):
        if time.monotonic() > deadline:
            raise SystemExit("the R13 writer did not catch up in 10 minutes")
        time.sleep(0.005)
    total = time.process_time() - t0
    writer.close()
    return count, spent, total


def cdr_writes(batch: int, records: int) -> float:
    """CPU per call record written by ``CdrStore.write_many`` in batches (the writer thread's cost,
    which it takes from the SIP loop: they share the GIL)."""
    import datetime as dt

    from provisioning.cdrs import CdrStore
    from provisioning.db import init_db, make_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/cdr.db")
        init_db(engine)
        store = CdrStore(engine)
        now = dt.datetime.now(dt.UTC)
        rows = [{"call_id": f"c{i}@h", "caller": "u1", "callee": "u2", "start": now, "answer": now, "end": now,
                 "duration_s": 1.0, "disposition": "answered", "sip_code": 200, "billable_s": 60,
                 "account_id": 1} for i in range(records)]
        t0 = time.thread_time()
        for i in range(0, records, batch):
            store.write_many(rows[i:i + batch])
        return (time.thread_time() - t0) / records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=200, help="distinct users")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--profile", action="store_true", help="cProfile the run; print the top functions")
    p.add_argument("--scenario", choices=("register", "call", "cdr", "first-registration"), default="register")
    p.add_argument("--lines", type=int, default=16, help="first-registration: lines per device")
    p.add_argument("--gc-pauses", action="store_true", help="report the cyclic collector's pauses")
    p.add_argument("--gc-thresholds", help="e.g. 50000,20,50 instead of voiplab serve's")
    args = p.parse_args()
    if args.scenario == "cdr":
        per = cdr_writes(100, 2000 * max(1, args.rounds // 10))
        print(f"call records: gateway CPU {per * 1e6:.1f} µs per record (batches of 100, SQLite)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(Path(tmp), algorithms=(Algorithm.MD5,), guard=FloodGuard(max_per_source=10**9,
                                                                              max_per_callee=10**9))
        if args.scenario == "first-registration":
            phones = multi_line_phones(gw, args.n, args.lines)
            tune_gc()
            count, spent, total = first_registrations(gw, phones)
            print(f"first registrations: {count} exchanges on {args.n} devices of {args.lines} lines, "
                  f"gateway CPU {spent * 1e6 / count:.1f} µs per exchange, process CPU (client side, R13 "
                  f"writer and directory included) {total * 1e6 / count:.1f} µs per exchange")
            return
        phones = [gw.phone(f"{2000 + i}") for i in range(args.n)]
        register_exchanges(gw, phones, 1)  # warm-up and bindings for the callees
        pairs = list(zip(phones[0::2], phones[1::2], strict=False))
        run: Callable[[], tuple[int, float]]
        if args.scenario == "register":
            run = lambda: register_exchanges(gw, phones, args.rounds)  # noqa: E731
        else:
            call_exchanges(gw, pairs, 1)
            run = lambda: call_exchanges(gw, pairs, args.rounds)  # noqa: E731
        gw.records.clear()
        tune_gc()  # as `voiplab serve` does once started: start-up heap frozen, small young generations
        if args.gc_thresholds:
            gc.set_threshold(*(int(x) for x in args.gc_thresholds.split(",")))
        pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        started = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses[info["generation"]].append((time.perf_counter() - started[0]) * 1e3)

        if args.gc_pauses:
            gc.callbacks.append(on_gc)
        prof = cProfile.Profile() if args.profile else None
        if prof:
            prof.enable()
        count, spent = run()
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(40)
        if args.gc_pauses:
            gc.callbacks.remove(on_gc)
            print(f"collector thresholds {gc.get_threshold()}")
            for gen, times in pauses.items():
                if times:
                    times.sort()
                    print(f"  gen {gen}: {len(times)} passes, p50 {times[len(times) // 2]:.2f} ms, "
                          f"max {times[-1]:.2f} ms, total {sum(times):.0f} ms")
        what = "REGISTER exchanges" if args.scenario == "register" else "calls"
        print(f"{what}: {count}, gateway CPU {spent * 1e6 / count:.1f} µs per {what[:-1]}")


if __name__ == "__main__":
    main()

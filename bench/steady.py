"""One scenario at one steady rate, with the CPU of every voiplab process (and py-spy profiles).

    .venv/bin/python -m bench.steady register 1500 [--registrar-workers 2] [--seconds 20] [--spy DIR]
    .venv/bin/python -m bench.steady call 300 --seconds 30 --spy /tmp/prof

The ladder in `make bench` says how far a server goes; this says what a change did to the
CPU a given load costs, process by process, which is steadier than a ladder's bisection on a
shared two-core machine (one run's figures moved by a few per cent between repeats here).
It starts voiplab as `make bench` does (same users, command line and SIPp scenarios), gets
the scenario's bindings in place (for `register`, a 12 s warm-up at 1,000/s first, so every
user's first REGISTER and its R13 fingerprint are behind it and the step is refreshes), then
runs one step of `--seconds` at `rate` and prints utime and stime per process (the main
process first, then the registrar workers) from /proc. With `--spy DIR`, py-spy records
each process in raw (collapsed-stack) form into DIR while the step runs, from 3 s in to 3 s
before its end; py-spy's own sampling costs the server a little, so a profiled run is not
the one to quote for CPU.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import sipp
from bench.cli import make_server, parse_args
from bench.ladder import Ladder
from bench.procstat import CLK_TCK, PROC, process_tree
from bench.runner import Plan, ServerBench
from bench.users import make_population


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process so far (its threads included)."""
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=("register", "call", "mixed"))
    p.add_argument("rate", type=int, help="REGISTER/s or calls/s")
    p.add_argument("--registrar-workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--registrants", type=int, default=10_000)
    p.add_argument("--spy", type=Path, metavar="DIR", help="py-spy each process into DIR/p<i>.txt")
    p.add_argument("--spy-rate", type=int, default=100, help="py-spy samples per second")
    args = p.parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp not found: apt-get install sip-tester")
        return 2
    spy_bin = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if args.spy and not Path(spy_bin).exists():
        print("py-spy not found: .venv/bin/pip install py-spy")
        return 2
    bench_args = parse_args(["--servers", "voiplab", "--registrar-workers", str(args.registrar_workers),
                             "--no-doc"])
    fixed = Ladder(start=args.rate, ceiling=args.rate, refine=0)
    plan = Plan(step_s=args.seconds, register=fixed, call=fixed, sipp_procs=1, uas_procs=1,
                digest_uri="request-uri", mixed=fixed, mixed_register_ratio=4, half_load=False,
                probe_interval_ms=20)
    population = make_population(args.registrants, 50)
    work = Path(tempfile.mkdtemp(prefix="voiplab-steady-"))
    server = make_server("voiplab", bench_args, work)
    try:
        accounts = server.launch(population.everyone)
        sb = ServerBench(server, accounts, [u.name for u in population.registrants],
                         [u.name for u in population.callers], [u.name for u in population.callees],
                         work / "runs", plan, sipp.SippOptions(), print, probe=population.probe.name)
        problem = sb._prepare(args.scenario, "before the step")
        if problem:
            print(problem)
            return 1
        if args.scenario == "register":
            warm = sb._run_step("register", 1000, step_s=12)
            print(f"warm-up (first registrations): {'ok' if warm.passed else warm.reasons[:1]}")
        sb._settle()
        pids = process_tree(server.pid())
        spies: list[subprocess.Popen[bytes]] = []
        if args.spy:
            args.spy.mkdir(parents=True, exist_ok=True)

            def spy() -> None:
                time.sleep(3)
                for i, pid in enumerate(pids):
                    spies.append(subprocess.Popen(
                        [spy_bin, "record", "-r", str(args.spy_rate), "-d", str(max(1, int(args.seconds - 6))),
                         "-f", "raw", "-p", str(pid), "-o", str(args.spy / f"p{i}.txt"), "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

            threading.Thread(target=spy, daemon=True).start()
        before = [cpu_split(pid) for pid in pids]
        t0 = time.monotonic()
        step = sb._run_step(args.scenario, args.rate)
        wall = time.monotonic() - t0
        after = [cpu_split(pid) for pid in pids]
        for proc in spies:
            proc.wait()
        print(f"{args.scenario} at {args.rate}/s for {wall:.1f} s: {'passed' if step.passed else 'FAILED'}, "
              f"achieved {step.achieved_rate:.0f}/s, p50 {step.p50_ms} ms, p99 {step.p99_ms} ms")
        for reason in step.reasons[:3]:
            print(f"  {reason}")
        total = 0.0
        for i, (pid, (u0, s0), (u1, s1)) in enumerate(zip(pids, before, after, strict=True)):
            name = "main" if i == 0 else f"worker {i}"
            pct = 100 * (u1 - u0 + s1 - s0) / wall
            total += pct
            print(f"  {name:9s} pid {pid}: {pct:5.1f} % of a core (user {100 * (u1 - u0) / wall:.1f}, "
                  f"system {100 * (s1 - s0) / wall:.1f})")
        print(f"  all processes: {total:.1f} %, {total / 100 / max(step.achieved_rate, 1) * 1e6:.0f} µs "
              f"per {'REGISTER exchange' if args.scenario == 'register' else 'call'}")
        if args.spy:
            print(f"  profiles: {args.spy}/p<i>.txt (py-spy raw; p0 is the main process)")
        return 0 if step.passed else 1
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

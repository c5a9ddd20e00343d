"""`python -m bench [--quick | --full] [...]`: measure voiplab and Kamailio side by side.

Order of work: check SIPp, raise socket limits, then for each server: start it with the
bench users, REGISTER ladder, register the callees, call ladder, register every user,
mixed ladder (calls with REGISTER refreshes alongside), each ladder followed by one step at
half its best rate with the latency probe (bench/probe.py), stop it. At the end:
JSON into bench/results/ and the generated block of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import report, sysctl
from bench.kamailio_server import KamailioServer
from bench.ladder import Ladder
from bench.runner import Plan, ServerBench
from bench.servers import BenchServer, ServerError, env_pairs, free_port
from bench.sipp import SippOptions, sipp_version
from bench.users import make_population
from bench.voiplab_server import VoiplabServer

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "bench.test"
SOCKET_SYSCTLS = {
    "net.core.rmem_max": 16 * 1024 * 1024,
    "net.core.wmem_max": 16 * 1024 * 1024,
    "net.core.rmem_default": 4 * 1024 * 1024,
    "net.core.wmem_default": 4 * 1024 * 1024,
    "net.core.netdev_max_backlog": 20000,
}
MODES = {
    # step length, bisection steps after the first failure
    "quick": (3.0, 1),
    "default": (4.0, 2),
    "full": (10.0, 3),
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 s steps, one refinement")
    mode.add_argument("--full", action="store_true", help="10 s steps, three refinements")
    p.add_argument("--servers", default="kamailio,voiplab",
                   help="comma list of kamailio, voiplab (default both)")
    p.add_argument("--scenarios", default="register,call,mixed",
                   help="comma list of register, call, mixed (default all three)")
    p.add_argument("--step-seconds", type=float, help="override the mode's step length")
    p.add_argument("--registrants", type=int, default=10_000,
                   help="distinct users in the REGISTER and mixed runs (default 10000)")
    p.add_argument("--call-pairs", type=int, default=50, help="caller/callee pairs in the call run")
    p.add_argument("--sipp-procs", type=int, default=1,
                   help="SIPp client processes sharing each step's rate (default 1)")
    p.add_argument("--uas-procs", type=int, default=1, help="SIPp UAS processes for the call run")
    p.add_argument("--digest-uri", choices=("request-uri", "server"), default="request-uri",
                   help="call run: 'request-uri' (default) gives each SIPp client one callee and "
                        "-auth_uri naming it, so the digest uri= equals the Request-URI; 'server' "
                        "cycles callees per call with SIPp's own uri= (the server address), which "
                        "only servers that do not check uri= accept")
    p.add_argument("--register-start", type=int, default=500, help="first REGISTER rate")
    p.add_argument("--call-start", type=int, default=100, help="first call rate")
    p.add_argument("--mixed-start", type=int, help="first call rate of the mixed run "
                   "(default: --call-start)")
    p.add_argument("--mixed-register-ratio", type=float, default=4.0,
                   help="mixed run: REGISTER exchanges per second for each call/s (default 4)")
    p.add_argument("--no-half-load", action="store_true",
                   help="skip the step at half the best rate with the latency probe")
    p.add_argument("--probe-interval-ms", type=float, default=20.0,
                   help="latency probe: one REGISTER exchange every N ms (default 20)")
    p.add_argument("--lines-per-phone", type=int, default=16,
                   help="voiplab: registering users' lines per Yealink T54W (1..16, default 16)")
    p.add_argument("--kamailio-workers", type=int, default=2, help="Kamailio UDP workers (-n)")
    p.add_argument("--voiplab", type=Path, default=ROOT / ".venv" / "bin" / "voiplab",
                   help="voiplab executable")
    p.add_argument("--registrar-workers", type=int, default=2,
                   help="voiplab's --registrar-workers (REGISTER off the main process; 0: one process)")
    p.add_argument("--voiplab-arg", action="append", default=[],
                   help="extra argument for `voiplab serve` (repeatable)")
    p.add_argument("--voiplab-env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment for `voiplab serve` (repeatable); by default the R27 flood "
                        "guard thresholds are raised, e.g. VOIPLAB_FLOOD_PER_LINE=60 restores one")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="keep the work directory (SIPp logs)")
    args = p.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in args.servers:
        if s not in ("kamailio", "voiplab"):
            p.error(f"unknown server {s!r}")
    for s in args.scenarios:
        if s not in ("register", "call", "mixed"):
            p.error(f"unknown scenario {s!r}")
    if min(args.registrants, args.call_pairs, args.sipp_procs, args.uas_procs) < 1:
        p.error("counts must be at least 1")
    if not 1 <= args.lines_per_phone <= 16:
        p.error("--lines-per-phone must be 1..16")
    if args.mixed_register_ratio < 0 or args.probe_interval_ms <= 0:
        p.error("--mixed-register-ratio must be >= 0 and --probe-interval-ms > 0")
    args.mode = "quick" if args.quick else "full" if args.full else "default"
    args.voiplab_env = env_pairs(args.voiplab_env, p.error)
    return args


def say(msg: str) -> None:
    print(msg, flush=True)


def make_server(name: str, args: argparse.Namespace, workdir: Path) -> BenchServer:
    host = "127.0.0.1"
    if name == "kamailio":
        return KamailioServer(workdir, host, free_port(host), DOMAIN,
                              children=args.kamailio_workers)
    return VoiplabServer(workdir, host, free_port(host), free_port(host), DOMAIN,
                         binary=args.voiplab, env=args.voiplab_env,
                         extra_args=[*(["--registrar-workers", str(args.registrar_workers)]
                                       if args.registrar_workers else []), *args.voiplab_arg],
                         lines_per_phone=args.lines_per_phone)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if shutil.which("sipp") is None:
        say("sipp not found: apt-get install sip-tester")
        return 2
    step_s, refine = MODES[args.mode]
    if args.step_seconds:
        step_s = args.step_seconds
    plan = Plan(
        step_s=step_s,
        register=Ladder(start=args.register_start, ceiling=128_000, refine=refine),
        call=Ladder(start=args.call_start, ceiling=32_000, refine=refine),
        sipp_procs=args.sipp_procs, uas_procs=args.uas_procs, digest_uri=args.digest_uri,
        mixed=Ladder(start=args.mixed_start or args.call_start, ceiling=32_000, refine=refine),
        mixed_register_ratio=args.mixed_register_ratio, half_load=not args.no_half_load,
        probe_interval_ms=args.probe_interval_ms,
    )
    opts = SippOptions()
    population = make_population(args.registrants, args.call_pairs)
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    t_start = time.monotonic()
    workroot = Path(tempfile.mkdtemp(prefix="voiplab-bench-"))
    command = ".venv/bin/python -m bench" + (" " + shlex.join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")
    data: dict[str, Any] = {
        "started_utc": started.isoformat().replace("+00:00", ""),
        "mode": args.mode, "command": command, "machine": report.machine_info(),
        "sipp_version": sipp_version(), "sipp_buff_size": opts.buff_size,
        "plan": {"step_s": step_s, "refine": refine, "sipp_procs": args.sipp_procs,
                 "uas_procs": args.uas_procs, "digest_uri": args.digest_uri,
                 "register_start": args.register_start,
                 "call_start": args.call_start, "mixed_start": args.mixed_start or args.call_start,
                 "mixed_register_ratio": args.mixed_register_ratio,
                 "half_load": not args.no_half_load, "probe_interval_ms": args.probe_interval_ms,
                 "half_load_min_s": plan.half_load_min_s},
        "users": {"registrants": args.registrants, "call_pairs": args.call_pairs, "probe": 1,
                  "lines_per_phone": args.lines_per_phone},
        "scenarios": args.scenarios, "servers": {}, "ratios": {},
        "criteria": "every call successful; no failed call, unexpected message or retransmission "
                    "at clients or UAS; achieved >= 90% of the asked rate (mixed: for the calls "
                    "and for the REGISTERs)",
    }
    say(f"bench: {args.mode} mode, steps of {step_s:g} s, work dir {workroot}")
    notes: list[str] = []
    failed_servers: list[str] = []
    try:
        with sysctl.raised(SOCKET_SYSCTLS, notes) as effective:
            data["sysctl"] = effective
            for line in notes:
                say("  " + line)
            for name in args.servers:
                workdir = workroot / name
                workdir.mkdir()
                server = make_server(name, args, workdir)
                say(f"{name}: starting with {len(population.everyone)} users")
                entry: dict[str, Any] = {}
                data["servers"][name] = entry
                try:
                    accounts = server.launch(population.everyone)
                except ServerError as exc:
                    entry["error"] = str(exc)
                    failed_servers.append(name)
                    say(f"{name}: could not start: {exc}")
                    continue
                entry["info"] = vars(server.info())
                say(f"{name}: {entry['info']['version']} on {entry['info']['sip']}")
                try:
                    sb = ServerBench(
                        server, accounts,
                        [u.name for u in population.registrants],
                        [u.name for u in population.callers],
                        [u.name for u in population.callees],
                        workdir / "runs", plan, opts, say, probe=population.probe.name)
                    results = sb.run(args.scenarios)
                    entry["results"] = {k: v.to_json() for k, v in results.items()}
                    if not server.alive():
                        entry["log_tail"] = server.log_tail()
                finally:
                    server.stop()
    finally:
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)
    servers = data["servers"]
    for scenario in args.scenarios:
        try:
            k = servers["kamailio"]["results"][scenario]["best_rate"]
            v = servers["voiplab"]["results"][scenario]["best_rate"]
        except KeyError:
            continue
        data["ratios"][scenario] = round(v / k, 3) if k else None
        costs = []
        for name in ("voiplab", "kamailio"):
            scen = servers[name]["results"][scenario]
            step = next((st for st in scen["steps"]
                         if st["passed"] and st["rate"] == scen["best_rate"]), None)
            costs.append(report.cpu_cost_us(step) if step else None)
        if costs[0] and costs[1]:
            data.setdefault("cost_ratios", {})[scenario] = round(costs[0] / costs[1], 2)
    data["duration_s"] = round(time.monotonic() - t_start, 1)
    data["json_name"] = report.json_name(data["started_utc"])
    json_path = report.write_json(args.results, data)
    summary = report.render_section(data)
    say("\n" + summary.split("\n", 2)[2].rsplit("\n", 2)[0])
    if failed_servers:
        say(f"\nnot written to {args.doc}: {', '.join(failed_servers)} did not run "
            f"(results in {json_path})")
        return 1
    if not args.no_doc:
        report.update_doc(args.doc, summary)
        say(f"\nwrote {json_path} and updated {args.doc}")
    else:
        say(f"\nwrote {json_path}")
    if args.keep:
        say(f"work directory kept: {workroot}")
    return 0

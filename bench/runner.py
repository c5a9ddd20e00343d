"""Run the scenarios against one server: ladders of fixed-length steps at rising rates.

A step is a fixed number of calls at a fixed rate (`-r`, `-rp 1000`, `-m`, `-l`),
bounded in time. It passes when every call succeeded and SIPp saw no failed call,
no unexpected message and no retransmission (on UDP a retransmission means an answer
took longer than T1 = 500 ms or was lost), at both the clients and the UAS, and the
clients achieved at least 90 % of the asked rate. The result of a scenario is the
highest passing rate below the lowest failing one.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import sipp
from bench.ladder import Ladder, nice
from bench.procstat import machine_busy_seconds, tree_cpu_seconds
from bench.servers import BenchServer, ServerError, free_port
from bench.users import SipAccount, write_callee_csv, write_calls_csv, write_register_csv

ROOT = Path(__file__).resolve().parents[1]
RTT_BATCH = 100  # -rtt_freq; per-process call counts are multiples of it (SIPp drops a partial batch)
MIN_ACHIEVED = 0.90
QUIET_SERVER = 0.05  # server below 5 % of a core: the previous step has drained
QUIET_BACKGROUND = 0.15  # other work below 15 % of a core: the machine is ours
DISTURBED = 20.0  # background % of a core during a step above which a failure is re-run once


@dataclass(frozen=True)
class Plan:
    step_s: float
    register: Ladder
    call: Ladder
    hold_s: float = 1.0  # the <pause> in bench/sipp/uac_call.xml
    sipp_procs: int = 1  # client processes sharing a step's rate
    uas_procs: int = 1
    settle_max_s: float = 5.0  # longest wait for a quiet server and machine before a step
    # How the call run keeps SIPp's digest uri= acceptable (SIPp always sends
    # sip:<server ip>:<port> unless -auth_uri is given, one value per process):
    #   "request-uri": each client process calls one callee and -auth_uri names it, so
    #                  uri= equals the Request-URI (RFC 2617 3.2.2.5; voiplab checks this);
    #   "server":      callees cycle per call and uri= is the server's address (fine for
    #                  servers that do not compare uri= with the Request-URI, e.g. Kamailio).
    digest_uri: str = "request-uri"
    mixed: Ladder | None = None  # mixed run's ladder, in calls/s (default: the call ladder's)
    mixed_register_ratio: float = 4.0  # mixed run: REGISTER exchanges per second per call/s
    half_load: bool = True  # after each ladder: one step at half the best rate with the probe
    half_load_min_s: float = 6.0  # that step lasts at least this long (probe samples)
    probe_interval_ms: float = 20.0
    probe_idle_s: float = 3.0  # the probe alone against the idle server, before that step


@dataclass
class Step:
    scenario: str
    rate: int
    calls: int
    passed: bool
    reasons: list[str]
    achieved_rate: float
    successful: int
    failed: int
    unexpected: int
    retransmissions: int
    max_udp_retrans: int
    dead_call_msgs: int
    uas_failed: int
    uas_retransmissions: int
    p50_ms: float | None
    p99_ms: float | None
    p99_bye_ms: float | None
    server_cpu_pct: float
    sipp_cpu_pct: float
    sipp_busiest_pct: float
    background_cpu_pct: float  # other processes on the machine during the step
    wall_s: float
    rtt_tick_ms: float | None = None  # smallest non-zero response time seen: SIPp's clock step
    errors: str = ""
    disturbed_attempts: int = 0  # failed attempts re-run because of background load
    disturbed_reasons: list[str] = field(default_factory=list)  # why that attempt failed
    # mixed run: the REGISTER clients running alongside the calls (rate, calls/p50/p99 above
    # are the calls'; failures, retransmissions and CPU cover every SIPp process)
    register_rate: int | None = None
    register_achieved_rate: float | None = None
    register_successful: int | None = None
    register_calls: int | None = None
    register_p50_ms: float | None = None
    register_p99_ms: float | None = None
    probe: dict[str, Any] | None = None  # bench/probe.py result when the probe ran alongside


@dataclass
class ScenarioResult:
    scenario: str
    best_rate: int
    steps: list[Step] = field(default_factory=list)
    note: str = ""
    # one step at half the best rate with the latency probe, and the probe against the idle
    # server just before: {"rate", "step", "idle", "probe", "note"}
    half_load: dict[str, Any] | None = None

    def best_step(self) -> Step | None:
        return next((s for s in self.steps if s.passed and s.rate == self.best_rate), None)

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "best_rate": self.best_rate, "note": self.note,
                "steps": [asdict(s) for s in self.steps], "half_load": self.half_load}


def _split(total: int, parts: int) -> list[int]:
    """Per-process call counts: multiples of RTT_BATCH summing to at least `total`."""
    each = max(1, math.ceil(total / parts / RTT_BATCH)) * RTT_BATCH
    return [each] * parts


def mixed_register_rate(call_rate: int, ratio: float) -> int:
    """REGISTER exchanges per second that run alongside `call_rate` calls/s in a mixed step."""
    return max(0, round(call_rate * ratio))


@dataclass(frozen=True)
class Group:
    """SIPp client processes of one kind in a step, sharing `rate` between them."""

    kind: str  # "register" or "call"
    xml: Path
    rate: int
    per_client: Sequence[tuple[Path, list[str]]]  # per process: injection file, extra args
    ports: Sequence[int]  # per process: local port (kept for the whole run)
    hold: float  # seconds a call stays up after its setup (0 for REGISTER)


@dataclass
class GroupOutcome:
    rate: int
    calls: int
    successful: int
    failed: int
    unexpected: int
    retransmissions: int
    max_udp_retrans: int
    dead_call_msgs: int
    achieved: float
    reasons: list[str]
    rtt: list[float]
    rtt_bye: list[float]


def judge_group(group: Group, results: Sequence[sipp.SippProcessResult]) -> GroupOutcome:
    """The pass criteria applied to one group's clients (pure: reads only the results)."""
    def total(key: str) -> int:
        return sum(r.stats.get(key) for r in results)

    calls = sum(int(r.argv[r.argv.index("-m") + 1]) for r in results)
    successful, failed = total("successful"), total("failed")
    unexpected, retrans = total("unexpected"), total("retransmissions")
    # Offered rate SIPp achieved: calls created over the time it took to create them (a
    # SIPp held back by -l or by its own CPU creates them late); completion is judged
    # separately, by the counters.
    windows = [r.stats.time_to_create(int(r.argv[r.argv.index("-m") + 1])) for r in results]
    if windows and all(w is not None and w > 0 for w in windows):
        achieved = total("created") / max(w for w in windows if w is not None)
    else:
        client_wall = max((r.wall_s for r in results), default=0.0)
        achieved = successful / max(0.001, client_wall - group.hold)
    reasons: list[str] = []
    bad_rc = [r.returncode for r in results if r.returncode != 0]
    if bad_rc:
        reasons.append(f"SIPp exit codes {bad_rc}")
    if successful < calls:
        reasons.append(f"{calls - successful} of {calls} calls not successful")
    if failed:
        reasons.append(f"{failed} failed calls ({unexpected} unexpected messages, "
                       f"{total('max_udp_retrans')} timeouts)")
    if retrans:
        reasons.append(f"{retrans} retransmissions")
    if achieved < MIN_ACHIEVED * group.rate:
        reasons.append(f"achieved {achieved:.0f}/s < {MIN_ACHIEVED:.0%} of {group.rate}/s")
    if any(r.killed for r in results):
        reasons.append("SIPp client killed after the step's time bound")
    rtt: list[float] = []
    rtt_bye: list[float] = []
    for r in results:
        rtt.extend(r.rtt_ms.get(1, []))
        rtt_bye.extend(r.rtt_ms.get(2, []))
    return GroupOutcome(rate=group.rate, calls=calls, successful=successful, failed=failed,
                        unexpected=unexpected, retransmissions=retrans,
                        max_udp_retrans=total("max_udp_retrans"),
                        dead_call_msgs=total("dead_call_msgs"), achieved=achieved,
                        reasons=reasons, rtt=rtt, rtt_bye=rtt_bye)


class ProbeProcess:
    """bench/probe.py in a process of its own (so the harness's polling does not delay its
    timing), reaped with its rusage so its CPU is not counted as other load."""

    def __init__(self, argv: list[str], out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=out.with_suffix(".err").open("wb"),
                                     env={**os.environ, "PYTHONPATH": str(ROOT)},
                                     start_new_session=True)

    @classmethod
    def start(cls, bench: ServerBench, out: Path, duration_s: float,
              delay_s: float = 0.0) -> ProbeProcess:
        out.parent.mkdir(parents=True, exist_ok=True)
        acc = bench.probe_account
        argv = [sys.executable, "-m", "bench.probe", "--server", bench.remote,
                "--username", acc.username, "--password", acc.password,
                "--domain", bench.server.domain, "--duration", f"{duration_s:g}",
                "--interval-ms", f"{bench.plan.probe_interval_ms:g}", "--json", str(out)]
        if delay_s > 0:
            argv += ["--delay", f"{delay_s:g}"]
        return cls(argv, out)

    def finish(self, grace_s: float = 10.0) -> tuple[dict[str, Any] | None, float]:
        """(the probe's JSON or None, its CPU seconds)."""
        deadline = time.monotonic() + grace_s
        cpu = 0.0
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                _, status, usage = os.wait4(self.proc.pid, 0)
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime
                break
            time.sleep(0.05)
        try:
            return json.loads(self.out.read_text()), cpu
        except (OSError, ValueError):
            err = self.out.with_suffix(".err")
            tail = err.read_text(errors="replace")[-1000:] if err.exists() else ""
            return {"error": f"probe exit {self.proc.returncode}: {tail}"}, cpu

class ServerBench:
    """Drives one running server through both scenarios."""

    def __init__(self, server: BenchServer, accounts: dict[str, SipAccount],
                 registrants: Sequence[str], callers: Sequence[str], callees: Sequence[str],
                 workdir: Path, plan: Plan, opts: sipp.SippOptions,
                 say: Callable[[str], None], probe: str | None = None) -> None:
        self.server = server
        self.workdir = workdir
        self.plan = plan
        self.opts = opts
        self.say = say
        self.remote = f"{server.sip_host}:{server.sip_port}"
        self.step_no = 0
        workdir.mkdir(parents=True, exist_ok=True)
        reg_accs = [accounts[n] for n in registrants]
        self.reg_csv = write_register_csv(workdir / "register.csv", reg_accs, server.domain)
        # Mixed run: the registering users split between REGISTER client processes, each user
        # always from the same port (so every REGISTER after the first is a refresh of its one
        # binding), Expires 3600 so the bindings stand for the whole run.
        self.mixed_reg = [
            (free_port(opts.local_ip),
             write_register_csv(workdir / f"register-mixed-{j}.csv", reg_accs[j::plan.sipp_procs],
                                server.domain, expires=3600))
            for j in range(plan.sipp_procs) if reg_accs[j::plan.sipp_procs]
        ]
        self.probe_account = accounts[probe] if probe is not None else None
        self.uas_ports = [free_port(opts.local_ip) for _ in range(plan.uas_procs)]
        # Clients keep their ports for the whole run, as phones keep their Contact: a new
        # port per step would pile up one more binding per AOR at every step.
        self.client_ports = [free_port(opts.local_ip) for _ in range(plan.sipp_procs)]
        caller_accs = [accounts[n] for n in callers]
        callee_accs = [accounts[n] for n in callees]
        # Callees registered by UAS instance: callee i belongs to UAS i mod uas_procs and is
        # registered *from* that UAS's port, so the binding's source address and its Contact
        # are the same (a registrar may route to either; voiplab routes to the source).
        self.callee_csvs = [
            (port, write_callee_csv(workdir / f"callees-{j}.csv",
                                    callee_accs[j::plan.uas_procs], server.domain,
                                    [f"{opts.local_ip}:{port}"]))
            for j, port in enumerate(self.uas_ports) if callee_accs[j::plan.uas_procs]
        ]
        self.call_plan: list[tuple[Path, list[str]]] = []  # per client process: inf, extra args
        if plan.digest_uri == "request-uri":
            for i in range(plan.sipp_procs):
                callee = callee_accs[i % len(callee_accs)]
                csv_path = write_calls_csv(workdir / f"calls-{i}.csv", caller_accs,
                                           [callee] * len(caller_accs), server.domain)
                self.call_plan.append((csv_path, ["-auth_uri", f"{callee.dial}@{server.domain}"]))
        elif plan.digest_uri == "server":
            csv_path = write_calls_csv(workdir / "calls.csv", caller_accs, callee_accs,
                                       server.domain)
            self.call_plan = [(csv_path, [])] * plan.sipp_procs
        else:
            raise ValueError(f"digest_uri must be 'request-uri' or 'server', not {plan.digest_uri!r}")

    # --- one step ---------------------------------------------------------------------------
    def _settle(self, max_s: float | None = None) -> None:
        """Let the previous step's timers and queues drain, and wait for other work on the
        machine to calm down: until, over 0.5 s, the server uses under 5 % of a core and
        everything else under 15 % (at least 0.5 s, at most plan.settle_max_s)."""
        deadline = time.monotonic() + (self.plan.settle_max_s if max_s is None else max_s)
        while time.monotonic() < deadline and self.server.alive():
            c0, m0 = tree_cpu_seconds(self.server.pid()), machine_busy_seconds()
            time.sleep(0.5)
            server = tree_cpu_seconds(self.server.pid()) - c0
            other = machine_busy_seconds() - m0 - server
            if server / 0.5 < QUIET_SERVER and other / 0.5 < QUIET_BACKGROUND:
                return

    def _groups(self, scenario: str, rate: int) -> list[Group]:
        """The client groups of one step: one for register/call, calls + REGISTERs for mixed."""
        n = self.plan.sipp_procs
        reg = Group("register", sipp.SCENARIOS / "register.xml", rate, [(self.reg_csv, [])] * n,
                    self.client_ports, 0.0)
        call = Group("call", sipp.SCENARIOS / "uac_call.xml", rate, self.call_plan,
                     self.client_ports, self.plan.hold_s)
        if scenario == "register":
            return [reg]
        if scenario == "call":
            return [call]
        if scenario == "mixed":
            reg_rate = mixed_register_rate(rate, self.plan.mixed_register_ratio)
            groups = [call]
            if reg_rate > 0:
                groups.append(Group("register", sipp.SCENARIOS / "register.xml", reg_rate,
                                    [(path, []) for _, path in self.mixed_reg],
                                    [port for port, _ in self.mixed_reg], 0.0))
            return groups
        raise ValueError(f"unknown scenario {scenario!r}")

    def _run_step(self, scenario: str, rate: int, step_s: float | None = None,
                  probe: bool = False) -> Step:
        self.step_no += 1
        step_dir = self.workdir / f"{self.step_no:02d}-{scenario}-{rate}"
        step_s = self.plan.step_s if step_s is None else step_s
        groups = self._groups(scenario, rate)
        launches: list[tuple[Group, list[int], float, int]] = []  # group, counts, per-process rate, -l
        for g in groups:
            n = len(g.ports)
            counts = _split(max(1, round(g.rate * step_s)), n)
            per_rate = g.rate / n
            seconds = 1.0 if g.kind == "register" else g.hold + 2.0  # outstanding calls allowed
            launches.append((g, counts, per_rate, max(50, math.ceil(per_rate * seconds))))
        load_s = max(counts[0] / per_rate for _, counts, per_rate, _ in launches)
        expected_s = max(counts[0] / per_rate + g.hold for g, counts, per_rate, _ in launches)
        timeout_s = expected_s + 4.0  # a call still open 4 s after the last was due has failed

        uas: list[sipp.SippProcess] = []
        if any(g.kind == "call" for g in groups):
            for i, port in enumerate(self.uas_ports):
                argv = sipp.server_argv(self.opts, scenario=sipp.SCENARIOS / "uas.xml",
                                        local_port=port, media_port=free_port(self.opts.local_ip),
                                        timeout_s=timeout_s + 15)
                uas.append(sipp.SippProcess("uas", argv, step_dir / f"uas{i}"))
            time.sleep(0.3)  # let the UAS bind before the first INVITE arrives

        cpu0, busy0 = tree_cpu_seconds(self.server.pid()), machine_busy_seconds()
        t0 = time.monotonic()
        clients: list[tuple[Group, sipp.SippProcess]] = []
        for gi, (g, counts, per_rate, limit) in enumerate(launches):
            for i, count in enumerate(counts):
                inf, extra = g.per_client[i]
                argv = sipp.client_argv(
                    self.opts, scenario=g.xml, remote=self.remote,
                    local_port=g.ports[i], media_port=free_port(self.opts.local_ip),
                    inf=inf, rate=per_rate, calls=count, limit=limit, timeout_s=timeout_s)
                argv[argv.index("-rtt_freq") + 1] = str(RTT_BATCH)
                argv += extra
                name = f"uac{i}" if gi == 0 else f"{g.kind}{i}"
                clients.append((g, sipp.SippProcess("uac", argv, step_dir / name)))
        prober = None
        if probe:
            # from the end of the ramp-up to just before the last call is created
            prober = ProbeProcess.start(self, step_dir / "probe.json",
                                        max(1.0, load_s - 1.0), delay_s=0.5)
        procs = [c for _, c in clients]
        stopped_early = self._watch(procs, uas, t0 + timeout_s + 2)
        if stopped_early:
            for proc in procs + uas:
                proc.signal(signal.SIGUSR1)
        results = [(g, c.finish(time.monotonic() + 3)) for g, c in clients]
        probe_out, probe_cpu = prober.finish() if prober is not None else (None, 0.0)
        t1 = time.monotonic()
        cpu1 = tree_cpu_seconds(self.server.pid()) if self.server.alive() else cpu0
        busy1 = machine_busy_seconds()
        uas_results = []
        for u in uas:  # no -m on the UAS: it gets SIGUSR1 once the clients are done
            uas_results.append(u.finish(time.monotonic() + 1.0))
        by_group = [(g, [r for gg, r in results if gg is g]) for g in groups]
        step = self._judge(scenario, by_group, uas_results, t1 - t0, cpu1 - cpu0,
                           busy1 - busy0 - probe_cpu)
        step.probe = probe_out
        if stopped_early:
            step.passed = False
            step.reasons.insert(0, f"stopped early: {stopped_early}")
        return step

    @staticmethod
    def _watch(clients: list[sipp.SippProcess], uas: list[sipp.SippProcess],
               deadline: float) -> str:
        """Wait for the clients to finish; return at once (with the reason) when any SIPp
        process reports a failed call or a retransmission, since the step has failed then
        and running it to the end only prolongs the overload. "" when it ran to the end."""
        while time.monotonic() < deadline:
            if all(c.poll() for c in clients):
                return ""
            for proc in clients + uas:
                stats = sipp.read_stats(proc.workdir / "stat.csv")
                if stats.get("failed") or stats.get("retransmissions"):
                    return (f"{proc.role} saw {stats.get('failed')} failed calls, "
                            f"{stats.get('retransmissions')} retransmissions")
            time.sleep(0.25)
        return ""

    def _judge(self, scenario: str, groups: list[tuple[Group, list[sipp.SippProcessResult]]],
               uas: list[sipp.SippProcessResult], wall: float, server_cpu: float,
               machine_busy: float) -> Step:
        """One verdict over every SIPp process of the step. The first group is the step's
        own (rate, achieved, p50/p99); a mixed step's REGISTER group is reported alongside."""
        every = [r for _, rs in groups for r in rs]
        outcomes = [judge_group(g, rs) for g, rs in groups]
        main = outcomes[0]
        uas_failed = sum(r.stats.get("failed") for r in uas)
        uas_retrans = sum(r.stats.get("retransmissions") for r in uas)
        reasons: list[str] = []
        if not self.server.alive():
            reasons.append("server died")
        for g, o in zip((g for g, _ in groups), outcomes, strict=True):
            prefix = f"{g.kind.upper()}: " if len(groups) > 1 else ""
            reasons += [prefix + r for r in o.reasons]
        if uas_failed or uas_retrans:
            reasons.append(f"UAS: {uas_failed} failed calls, {uas_retrans} retransmissions")
        sipp_cpu = sum(r.cpu_s for r in every + uas)
        background = max(0.0, machine_busy - server_cpu - sipp_cpu)
        busiest = max((r.cpu_s / r.wall_s for r in every + uas if r.wall_s > 0), default=0.0)
        errors = ""
        if reasons:
            errors = next((r.error_tail() for r in every + uas if r.error_tail()), "")
        rtt_all = [v for o in outcomes for v in o.rtt + o.rtt_bye]
        step = Step(
            scenario=scenario, rate=main.rate, calls=main.calls, passed=not reasons, reasons=reasons,
            achieved_rate=round(main.achieved, 1), successful=main.successful,
            failed=sum(o.failed for o in outcomes), unexpected=sum(o.unexpected for o in outcomes),
            retransmissions=sum(o.retransmissions for o in outcomes),
            max_udp_retrans=sum(o.max_udp_retrans for o in outcomes),
            dead_call_msgs=sum(o.dead_call_msgs for o in outcomes), uas_failed=uas_failed,
            uas_retransmissions=uas_retrans,
            p50_ms=sipp.percentile(main.rtt, 50), p99_ms=sipp.percentile(main.rtt, 99),
            p99_bye_ms=sipp.percentile(main.rtt_bye, 99),
            server_cpu_pct=round(100 * server_cpu / wall, 1) if wall > 0 else 0.0,
            sipp_cpu_pct=round(100 * sipp_cpu / wall, 1) if wall > 0 else 0.0,
            sipp_busiest_pct=round(100 * busiest, 1),
            background_cpu_pct=round(100 * background / wall, 1) if wall > 0 else 0.0,
            wall_s=round(wall, 2), errors=errors[:3000],
            rtt_tick_ms=min((v for v in rtt_all if v > 0), default=None),
        )
        if len(outcomes) > 1:
            reg = outcomes[1]
            step.register_rate = reg.rate
            step.register_achieved_rate = round(reg.achieved, 1)
            step.register_successful = reg.successful
            step.register_calls = reg.calls
            step.register_p50_ms = sipp.percentile(reg.rtt, 50)
            step.register_p99_ms = sipp.percentile(reg.rtt, 99)
        return step

    # --- ladders ----------------------------------------------------------------------------
    def _fresh_server(self, scenario: str, why: str) -> str | None:
        """Restart the server (and re-register the callees for calls). After an overload
        both servers keep retransmitting, timing out and answering late for a while, and
        the UAS port of the next step would receive the previous step's INVITEs: every
        step after a failure starts from a clean server instead. None when that worked."""
        self.say(f"  {self.server.name}: restarting ({why})")
        try:
            self.server.restart()
        except ServerError as exc:
            return f"restart failed: {exc}"
        return self._prepare(scenario, "after restart")

    def _prepare(self, scenario: str, when: str = "") -> str | None:
        """Bindings a scenario needs before its steps: the callees for calls, and for the
        mixed run also every registering user (so the step's REGISTERs are refreshes while
        the location table holds all of them). None when that worked."""
        if scenario in ("call", "mixed"):
            problem = self.register_callees()
            if problem is not None:
                return f"callee registration {when} failed: ".replace("  ", " ") + problem
        if scenario == "mixed":
            problem = self.register_registrants()
            if problem is not None:
                return f"registering the users {when} failed: ".replace("  ", " ") + problem
        return None

    def _ladder(self, scenario: str, ladder: Ladder) -> ScenarioResult:
        result = ScenarioResult(scenario=scenario, best_rate=0)
        history: list[tuple[int, bool]] = []
        while (rate := ladder.next_rate(history)) is not None:
            if (history and not history[-1][1]) or not self.server.alive():
                why = "it died" if not self.server.alive() else "the last step failed"
                problem = self._fresh_server(scenario, why)
                if problem is not None:
                    result.note = problem
                    break
            self._settle()
            step = self._run_step(scenario, rate)
            if not step.passed and step.background_cpu_pct > DISTURBED and self.server.alive():
                # Other work took a share of the cores this step needed: run it once more.
                self.say(f"  {self.server.name} {scenario:8s} {rate:>6}/s  failed with "
                         f"{step.background_cpu_pct:.0f} % background CPU, running it again")
                first = step
                problem = self._fresh_server(scenario, "re-running a disturbed step")
                if problem is not None:
                    result.note = problem
                    result.steps.append(step)
                    history.append((rate, False))
                    break
                self._settle(max_s=4 * self.plan.settle_max_s)  # give the other work time to end
                step = self._run_step(scenario, rate)
                step.disturbed_attempts = 1
                step.disturbed_reasons = [*first.reasons, f"{first.background_cpu_pct:.0f} % other CPU"]
            if not step.passed and step.background_cpu_pct > DISTURBED:
                step.reasons.append(f"while other processes used {step.background_cpu_pct:.0f} % CPU")
            result.steps.append(step)
            history.append((rate, step.passed))
            if step.successful == 0:
                # nothing works at all: a functional problem, not a capacity limit
                result.note = (f"no call succeeded at {rate}/s, stopped: " + "; ".join(step.reasons)
                               + (f"\n{step.errors[:1500]}" if step.errors else ""))
            verdict = "ok" if step.passed else "FAIL: " + "; ".join(step.reasons)
            p = f"p50 {step.p50_ms} ms p99 {step.p99_ms} ms" if step.p50_ms is not None else "no rtt"
            if step.register_rate:
                p += (f"; + {step.register_rate} REGISTER/s achieved {step.register_achieved_rate:.0f}/s"
                      f" p50 {step.register_p50_ms} ms p99 {step.register_p99_ms} ms")
            self.say(f"  {self.server.name} {scenario:8s} {rate:>6}/s  achieved {step.achieved_rate:>8.0f}/s"
                     f"  CPU server {step.server_cpu_pct:5.1f}% SIPp {step.sipp_cpu_pct:5.1f}%"
                     f" other {step.background_cpu_pct:5.1f}%  {p}  {verdict}")
            if step.successful == 0:
                break
        result.best_rate = Ladder.best(history)
        if history and all(ok for _, ok in history):
            result.note = f"no failure up to the ceiling of {ladder.ceiling}/s"
        return result

    def _register_all(self, batches: Sequence[tuple[int, Path]], xml: Path, label: str,
                      rate: int, limit: int) -> str | None:
        """Register every line of each (port, csv) batch from that port, retried up to 3
        times (a freshly provisioned server may take a moment to see new devices).
        None when every REGISTER got its 200, else what went wrong."""
        for j, (port, csv_path) in enumerate(batches):
            count = len(csv_path.read_text().splitlines()) - 1
            last = ""
            for attempt in range(3):
                argv = sipp.client_argv(
                    self.opts, scenario=xml, remote=self.remote, local_port=port,
                    media_port=free_port(self.opts.local_ip), inf=csv_path,
                    rate=min(rate, count), calls=count, limit=limit,
                    timeout_s=30 + count / max(1, rate) * 3, trace_rtt=False)
                proc = sipp.SippProcess("uac", argv, self.workdir / f"{label}-{j}-{attempt}")
                res = proc.finish(time.monotonic() + 40 + count / max(1, rate) * 3)
                if res.returncode == 0 and res.stats.get("successful") == count:
                    break
                last = (f"exit {res.returncode}, {res.stats.get('successful')}/{count} registered\n"
                        + res.error_tail())
                time.sleep(1.0)
            else:
                return last
        return None

    def register_callees(self) -> str | None:
        """Bind every callee to its UAS (Expires 3600), registering from the UAS's own port."""
        return self._register_all(self.callee_csvs, sipp.SCENARIOS / "register_callee.xml",
                                  "callee-register", rate=200, limit=50)

    def register_registrants(self) -> str | None:
        """Bind every registering user (Expires 3600) from its mixed-run REGISTER port, at
        most 100 exchanges outstanding (self-paced: a slower server just takes longer)."""
        return self._register_all(self.mixed_reg, sipp.SCENARIOS / "register.xml",
                                  "users-register", rate=2000, limit=100)

    def _half_load(self, scenario: str, result: ScenarioResult) -> None:
        """One step at half the best rate with the latency probe alongside, after the probe
        alone against the idle server (the baseline). Judged like any step, kept apart from
        the ladder (it does not change the best rate)."""
        if not self.plan.half_load or result.best_rate <= 0 or self.probe_account is None:
            return
        rate = max(1, nice(result.best_rate / 2))
        half: dict[str, Any] = {"rate": rate, "note": ""}
        result.half_load = half
        last_failed = bool(result.steps) and not result.steps[-1].passed
        if last_failed or not self.server.alive():
            problem = self._fresh_server(scenario, "half-load step after the ladder")
            if problem is not None:
                half["note"] = problem
                return
        self._settle()
        idle = ProbeProcess.start(self, self.workdir / f"probe-idle-{scenario}.json",
                                  self.plan.probe_idle_s)
        half["idle"], _ = idle.finish(grace_s=self.plan.probe_idle_s + 10)
        self._settle()
        step = self._run_step(scenario, rate, step_s=max(self.plan.step_s, self.plan.half_load_min_s),
                              probe=True)
        half["step"] = asdict(step)
        half["probe"] = step.probe
        self.say(f"  {self.server.name} {scenario:8s} {rate:>6}/s  half load: "
                 f"{'ok' if step.passed else 'FAIL: ' + '; '.join(step.reasons)}; probe "
                 f"{probe_text(step.probe)}; idle {probe_text(half['idle'])}")

    def _scenario(self, scenario: str, ladder: Ladder, restart_first: bool) -> ScenarioResult:
        if restart_first:
            # the previous ladder ended in overload: start this one from a clean server
            try:
                self.server.restart()
            except ServerError as exc:
                return ScenarioResult(scenario, 0, note=f"restart failed: {exc}")
        problem = self._prepare(scenario)
        if problem is not None:
            return ScenarioResult(scenario, 0, note=problem)
        result = self._ladder(scenario, ladder)
        self._half_load(scenario, result)
        return result

    def run(self, scenarios: Sequence[str]) -> dict[str, ScenarioResult]:
        out: dict[str, ScenarioResult] = {}
        ladders = {"register": self.plan.register, "call": self.plan.call,
                   "mixed": self.plan.mixed or self.plan.call}
        for scenario in ("register", "call", "mixed"):
            if scenario in scenarios:
                out[scenario] = self._scenario(scenario, ladders[scenario], restart_first=bool(out))
        return out


def probe_text(probe: dict[str, Any] | None) -> str:
    """'p50 0.41 / p99 1.20 / max 3.10 ms (n 290)' for the console."""
    if not probe:
        return "no probe"
    if "error" in probe:
        return "error: " + str(probe["error"])[:200]
    ex = probe.get("exchange", {})
    if not ex.get("n"):
        return f"no answered exchange (lost {probe.get('lost')})"
    lost = f", {probe['lost']} lost" if probe.get("lost") else ""
    return (f"p50 {ex['p50_ms']:.2f} / p99 {ex['p99_ms']:.2f} / max {ex['max_ms']:.2f} ms "
            f"(n {ex['n']}{lost})")

"""Run the scenarios against one server: ladders of fixed-length steps at rising rates.

A step is a fixed number of calls at a fixed rate (`-r`, `-rp 1000`, `-m`, `-l`),
bounded in time. It passes when every call succeeded and SIPp saw no failed call,
no unexpected message and no retransmission (on UDP a retransmission means an answer
took longer than T1 = 500 ms or was lost), at both the clients and the UAS, and the
clients achieved at least 90 % of the asked rate. The result of a scenario is the
highest passing rate below the lowest failing one.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import sipp
from bench.ladder import Ladder
from bench.procstat import machine_busy_seconds, tree_cpu_seconds
from bench.servers import BenchServer, ServerError, free_port
from bench.users import SipAccount, write_callee_csv, write_calls_csv, write_register_csv

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


@dataclass
class ScenarioResult:
    scenario: str
    best_rate: int
    steps: list[Step] = field(default_factory=list)
    note: str = ""

    def best_step(self) -> Step | None:
        return next((s for s in self.steps if s.passed and s.rate == self.best_rate), None)

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "best_rate": self.best_rate, "note": self.note,
                "steps": [asdict(s) for s in self.steps]}


def _split(total: int, parts: int) -> list[int]:
    """Per-process call counts: multiples of RTT_BATCH summing to at least `total`."""
    each = max(1, math.ceil(total / parts / RTT_BATCH)) * RTT_BATCH
    return [each] * parts


class ServerBench:
    """Drives one running server through both scenarios."""

    def __init__(self, server: BenchServer, accounts: dict[str, SipAccount],
                 registrants: Sequence[str], callers: Sequence[str], callees: Sequence[str],
                 workdir: Path, plan: Plan, opts: sipp.SippOptions,
                 say: Callable[[str], None]) -> None:
        self.server = server
        self.workdir = workdir
        self.plan = plan
        self.opts = opts
        self.say = say
        self.remote = f"{server.sip_host}:{server.sip_port}"
        self.step_no = 0
        workdir.mkdir(parents=True, exist_ok=True)
        self.reg_csv = write_register_csv(workdir / "register.csv",
                                          [accounts[n] for n in registrants], server.domain)
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

    def _run_step(self, scenario: str, rate: int) -> Step:
        self.step_no += 1
        step_dir = self.workdir / f"{self.step_no:02d}-{scenario}-{rate}"
        n = self.plan.sipp_procs
        total = max(1, round(rate * self.plan.step_s))
        counts = _split(total, n)
        per_rate = rate / n
        hold = self.plan.hold_s if scenario == "call" else 0.0
        if scenario == "register":
            xml = sipp.SCENARIOS / "register.xml"
            per_client = [(self.reg_csv, [])] * n
            limit = max(50, math.ceil(per_rate * 1.0))  # one second's worth outstanding
        else:
            xml = sipp.SCENARIOS / "uac_call.xml"
            per_client = self.call_plan
            limit = max(50, math.ceil(per_rate * (hold + 2.0)))
        expected_s = counts[0] / per_rate + hold
        timeout_s = expected_s + 4.0  # a call still open 4 s after the last was due has failed

        uas: list[sipp.SippProcess] = []
        if scenario == "call":
            for i, port in enumerate(self.uas_ports):
                argv = sipp.server_argv(self.opts, scenario=sipp.SCENARIOS / "uas.xml",
                                        local_port=port, media_port=free_port(self.opts.local_ip),
                                        timeout_s=timeout_s + 15)
                uas.append(sipp.SippProcess("uas", argv, step_dir / f"uas{i}"))
            time.sleep(0.3)  # let the UAS bind before the first INVITE arrives

        cpu0, busy0 = tree_cpu_seconds(self.server.pid()), machine_busy_seconds()
        t0 = time.monotonic()
        clients = []
        for i, count in enumerate(counts):
            inf, extra = per_client[i]
            argv = sipp.client_argv(
                self.opts, scenario=xml, remote=self.remote,
                local_port=self.client_ports[i], media_port=free_port(self.opts.local_ip),
                inf=inf, rate=per_rate, calls=count, limit=limit, timeout_s=timeout_s)
            argv[argv.index("-rtt_freq") + 1] = str(RTT_BATCH)
            argv += extra
            clients.append(sipp.SippProcess("uac", argv, step_dir / f"uac{i}"))
        stopped_early = self._watch(clients, uas, t0 + timeout_s + 2)
        if stopped_early:
            for proc in clients + uas:
                proc.signal(signal.SIGUSR1)
        results = [c.finish(time.monotonic() + 3) for c in clients]
        t1 = time.monotonic()
        cpu1 = tree_cpu_seconds(self.server.pid()) if self.server.alive() else cpu0
        busy1 = machine_busy_seconds()
        uas_results = []
        for u in uas:  # no -m on the UAS: it gets SIGUSR1 once the clients are done
            uas_results.append(u.finish(time.monotonic() + 1.0))
        step = self._judge(scenario, rate, results, uas_results, t1 - t0, cpu1 - cpu0,
                           busy1 - busy0, hold)
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

    def _judge(self, scenario: str, rate: int, results: list[sipp.SippProcessResult],
               uas: list[sipp.SippProcessResult], wall: float, server_cpu: float,
               machine_busy: float, hold: float) -> Step:
        def total(rs: list[sipp.SippProcessResult], key: str) -> int:
            return sum(r.stats.get(key) for r in rs)

        calls = sum(int(r.argv[r.argv.index("-m") + 1]) for r in results)
        successful = total(results, "successful")
        failed = total(results, "failed")
        unexpected = total(results, "unexpected")
        retrans = total(results, "retransmissions")
        uas_failed = total(uas, "failed")
        uas_retrans = total(uas, "retransmissions")
        # Offered rate SIPp achieved: calls created over the time it took to create them (a
        # SIPp held back by -l or by its own CPU creates them late); completion is judged
        # separately, by the counters.
        windows = [r.stats.time_to_create(int(r.argv[r.argv.index("-m") + 1])) for r in results]
        if windows and all(w is not None and w > 0 for w in windows):
            created = total(results, "created")
            achieved = created / max(w for w in windows if w is not None)
        else:
            client_wall = max((r.wall_s for r in results), default=wall)
            achieved = successful / max(0.001, client_wall - hold)
        reasons: list[str] = []
        if not self.server.alive():
            reasons.append("server died")
        bad_rc = [r.returncode for r in results if r.returncode != 0]
        if bad_rc:
            reasons.append(f"SIPp exit codes {bad_rc}")
        if successful < calls:
            reasons.append(f"{calls - successful} of {calls} calls not successful")
        if failed:
            reasons.append(f"{failed} failed calls ({unexpected} unexpected messages, "
                           f"{total(results, 'max_udp_retrans')} timeouts)")
        if retrans:
            reasons.append(f"{retrans} retransmissions")
        if uas_failed or uas_retrans:
            reasons.append(f"UAS: {uas_failed} failed calls, {uas_retrans} retransmissions")
        if achieved < MIN_ACHIEVED * rate:
            reasons.append(f"achieved {achieved:.0f}/s < {MIN_ACHIEVED:.0%} of {rate}/s")
        if any(r.killed for r in results):
            reasons.append("SIPp client killed after the step's time bound")
        rtt: list[float] = []
        rtt_bye: list[float] = []
        for r in results:
            rtt.extend(r.rtt_ms.get(1, []))
            rtt_bye.extend(r.rtt_ms.get(2, []))
        sipp_cpu = sum(r.cpu_s for r in results + uas)
        background = max(0.0, machine_busy - server_cpu - sipp_cpu)
        busiest = max((r.cpu_s / r.wall_s for r in results + uas if r.wall_s > 0), default=0.0)
        errors = ""
        if reasons:
            errors = next((r.error_tail() for r in results + uas if r.error_tail()), "")
        return Step(
            scenario=scenario, rate=rate, calls=calls, passed=not reasons, reasons=reasons,
            achieved_rate=round(achieved, 1), successful=successful, failed=failed,
            unexpected=unexpected, retransmissions=retrans,
            max_udp_retrans=total(results, "max_udp_retrans"),
            dead_call_msgs=total(results, "dead_call_msgs"), uas_failed=uas_failed,
            uas_retransmissions=uas_retrans,
            p50_ms=sipp.percentile(rtt, 50), p99_ms=sipp.percentile(rtt, 99),
            p99_bye_ms=sipp.percentile(rtt_bye, 99),
            server_cpu_pct=round(100 * server_cpu / wall, 1) if wall > 0 else 0.0,
            sipp_cpu_pct=round(100 * sipp_cpu / wall, 1) if wall > 0 else 0.0,
            sipp_busiest_pct=round(100 * busiest, 1),
            background_cpu_pct=round(100 * background / wall, 1) if wall > 0 else 0.0,
            wall_s=round(wall, 2), errors=errors[:3000],
            rtt_tick_ms=min((v for v in rtt + rtt_bye if v > 0), default=None),
        )

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
        if scenario == "call":
            problem = self.register_callees()
            if problem is not None:
                return "callee registration after restart failed: " + problem
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
            self.say(f"  {self.server.name} {scenario:8s} {rate:>6}/s  achieved {step.achieved_rate:>8.0f}/s"
                     f"  CPU server {step.server_cpu_pct:5.1f}% SIPp {step.sipp_cpu_pct:5.1f}%"
                     f" other {step.background_cpu_pct:5.1f}%  {p}  {verdict}")
            if step.successful == 0:
                break
        result.best_rate = Ladder.best(history)
        if history and all(ok for _, ok in history):
            result.note = f"no failure up to the ceiling of {ladder.ceiling}/s"
        return result

    def register_callees(self) -> str | None:
        """Bind every callee to its UAS (Expires 3600), registering from the UAS's own port.
        Retried, since a freshly provisioned server may take a moment to see new devices.
        None when every REGISTER got its 200, else what went wrong."""
        for j, (port, csv_path) in enumerate(self.callee_csvs):
            count = len(csv_path.read_text().splitlines()) - 1
            last = ""
            for attempt in range(3):
                argv = sipp.client_argv(
                    self.opts, scenario=sipp.SCENARIOS / "register_callee.xml",
                    remote=self.remote, local_port=port,
                    media_port=free_port(self.opts.local_ip), inf=csv_path,
                    rate=min(200, count), calls=count, limit=50, timeout_s=30, trace_rtt=False)
                proc = sipp.SippProcess("uac", argv, self.workdir / f"callee-register-{j}-{attempt}")
                res = proc.finish(time.monotonic() + 40)
                if res.returncode == 0 and res.stats.get("successful") == count:
                    break
                last = (f"exit {res.returncode}, {res.stats.get('successful')}/{count} registered\n"
                        + res.error_tail())
                time.sleep(1.0)
            else:
                return last
        return None

    def run(self, scenarios: Sequence[str]) -> dict[str, ScenarioResult]:
        out: dict[str, ScenarioResult] = {}
        if "register" in scenarios:
            out["register"] = self._ladder("register", self.plan.register)
        if "call" in scenarios:
            if "register" in scenarios:
                # the REGISTER ladder ends in overload: start the call run from a clean server
                try:
                    self.server.restart()
                except ServerError as exc:
                    out["call"] = ScenarioResult("call", 0, note=f"restart failed: {exc}")
                    return out
            problem = self.register_callees()
            if problem is not None:
                out["call"] = ScenarioResult("call", 0, note="callee registration failed: " + problem)
            else:
                out["call"] = self._ladder("call", self.plan.call)
        return out

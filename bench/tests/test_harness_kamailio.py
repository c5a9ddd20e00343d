"""The whole harness once, at a low rate, against a real Kamailio and real SIPp.

This checks the plumbing (subscriber table, scenarios, CSV injection, stats and
response-time parsing, CPU accounting, the mixed run's two client groups, the latency
probe's digest), not speed: one short step per scenario at a rate any machine sustains.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.kamailio_server import KamailioServer
from bench.ladder import Ladder
from bench.runner import Plan, ServerBench
from bench.servers import free_port
from bench.sipp import SippOptions
from bench.users import make_population

pytestmark = pytest.mark.skipif(
    shutil.which("sipp") is None or shutil.which("/usr/sbin/kamailio") is None,
    reason="needs sipp (sip-tester) and kamailio",
)


def test_one_low_rate_step_per_scenario_passes(tmp_path: Path) -> None:
    population = make_population(registrants=5, call_pairs=3)
    server = KamailioServer(tmp_path / "kam", "127.0.0.1", free_port(), "bench.test")
    (tmp_path / "kam").mkdir()
    lines: list[str] = []
    accounts = server.launch(population.everyone)
    try:
        plan = Plan(step_s=1.0, register=Ladder(start=20, ceiling=20),
                    call=Ladder(start=10, ceiling=10), settle_max_s=3.0,
                    mixed_register_ratio=2.0, half_load_min_s=1.5, probe_idle_s=0.5)
        bench = ServerBench(server, accounts, [u.name for u in population.registrants],
                            [u.name for u in population.callers],
                            [u.name for u in population.callees],
                            tmp_path / "runs", plan, SippOptions(), lines.append,
                            probe=population.probe.name)
        results = bench.run(["register", "call", "mixed"])
    finally:
        server.stop()
    assert not server.alive()
    for scenario, rate in (("register", 20), ("call", 10), ("mixed", 10)):
        res = results[scenario]
        assert res.best_rate == rate, (scenario, [s.reasons for s in res.steps], lines)
        step = res.steps[0]
        assert step.successful == step.calls >= rate
        assert step.failed == step.retransmissions == step.uas_failed == 0
        assert step.p50_ms is not None and step.p99_ms is not None and step.p50_ms <= step.p99_ms
        assert step.server_cpu_pct > 0
        # the half-load step ran with the probe, and the probe alone against the idle server
        half = res.half_load
        assert half is not None and half["rate"] == rate // 2, (scenario, half, lines)
        assert half["step"]["passed"], (scenario, half["step"]["reasons"])
        for probe in (half["probe"], half["idle"]):
            assert probe["exchange"]["n"] > 0 and probe["lost"] == 0 and not probe["errors"], probe
            assert 0 < probe["exchange"]["p50_ms"] <= probe["exchange"]["p99_ms"]
    mixed = results["mixed"].steps[0]
    assert mixed.register_rate == 20 and mixed.register_successful == mixed.register_calls >= 20

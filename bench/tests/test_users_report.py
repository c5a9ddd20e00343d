"""Injection files, credential checks, and the generated block of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report
from bench.users import (
    SipAccount,
    make_population,
    write_callee_csv,
    write_calls_csv,
    write_register_csv,
)


def test_population_roles_are_disjoint_and_deterministic() -> None:
    a, b = make_population(10, 4), make_population(10, 4)
    assert a == b
    names = [u.name for u in a.everyone]
    assert len(names) == len(set(names)) == 19  # 10 + 2 x 4 + the probe's own user
    assert len({u.extension for u in a.everyone}) == 19
    assert not {u.name for u in a.registrants} & {u.name for u in a.callers + a.callees}
    assert a.probe not in a.registrants + a.callers + a.callees
    assert {u.role for u in a.registrants} == {"register"} and a.probe.role == "probe"
    assert {u.role for u in a.callers} == {"caller"} and {u.role for u in a.callees} == {"callee"}


def test_ten_thousand_registrants_get_distinct_names_and_a_csv_line_each(tmp_path: Path) -> None:
    pop = make_population(10_000, 50)
    assert len(pop.registrants) == 10_000
    assert len({u.name for u in pop.everyone}) == len({u.extension for u in pop.everyone}) == 10_101
    accs = [SipAccount(u.name, u.password, u.extension) for u in pop.registrants]
    lines = write_register_csv(tmp_path / "r.csv", accs, "bench.test",
                               expires=3600).read_text().splitlines()
    assert len(lines) == 10_001 and lines[0] == "SEQUENTIAL"
    assert len({line.split(";", 1)[0] for line in lines[1:]}) == 10_000
    assert all(line.endswith(";3600") for line in lines[1:])
    assert not [u.name for u in pop.everyone if u.password[:2].lower() == "0x"]


@pytest.mark.parametrize("bad", ["pa ss", "pa;ss", "pa]ss", "", "pässword", "0xsygy1yqVjI3NBn", "0Xab"])
def test_credentials_sipp_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="password"):
        SipAccount(username="u1", password=bad, dial="u1")


def test_csv_files_have_one_sequential_line_per_account(tmp_path: Path) -> None:
    accs = [SipAccount(f"u{i}", f"pw{i}", f"20{i}") for i in range(4)]
    reg = write_register_csv(tmp_path / "r.csv", accs, "bench.test").read_text().splitlines()
    assert reg[0] == "SEQUENTIAL"
    assert reg[1] == "u0;bench.test;[authentication username=u0 password=pw0];120"
    callee = write_callee_csv(tmp_path / "c.csv", accs, "bench.test",
                              ["127.0.0.1:1", "127.0.0.1:2"]).read_text().splitlines()
    assert [line.rsplit(";", 1)[1] for line in callee[1:]] == ["127.0.0.1:1", "127.0.0.1:2"] * 2
    calls = write_calls_csv(tmp_path / "k.csv", accs[:2], accs[2:], "bench.test").read_text()
    assert calls.splitlines()[1].endswith(";202")
    with pytest.raises(ValueError):
        write_calls_csv(tmp_path / "x.csv", accs[:1], accs[1:], "bench.test")


def _step(rate: int, passed: bool) -> dict[str, object]:
    return {"rate": rate, "passed": passed, "reasons": [] if passed else ["12 retransmissions"],
            "achieved_rate": rate * 0.99, "server_cpu_pct": 50.0, "sipp_cpu_pct": 30.0,
            "sipp_busiest_pct": 30.0, "background_cpu_pct": 1.0, "p50_ms": 0.0, "p99_ms": 4.0}


def _data(k_best: int, v_best: int) -> dict[str, object]:
    def scen(best: int) -> dict[str, object]:
        return {"scenario": "register", "best_rate": best, "note": "",
                "steps": [_step(best, True), _step(best * 2, False)]}
    return {
        "started_utc": "2026-01-01T00:00:00", "mode": "quick", "command": "python -m bench",
        "duration_s": 10.0,
        "machine": {"nproc": 2, "cpu": "cpu", "memory_gb": 1.0, "os": "os", "kernel": "k",
                    "python": "3.11"},
        "sipp_version": "SIPp v3.6.1", "sipp_buff_size": 1,
        "plan": {"sipp_procs": 1, "uas_procs": 1, "step_s": 3.0},
        "sysctl": {"net.core.rmem_max": 1}, "users": {"registrants": 1, "call_pairs": 1},
        "scenarios": ["register"], "json_name": "bench-x.json",
        "ratios": {"register": round(v_best / k_best, 3)},
        "servers": {
            "kamailio": {"info": {"version": "5.6.3 (x86_64/linux)",
                                  "details": {"udp_workers": "2"}},
                         "results": {"register": scen(k_best)}},
            "voiplab": {"info": {"version": "0.1.0", "details": {}},
                        "results": {"register": scen(v_best)}},
        },
    }


def test_section_shows_both_servers_and_the_ratio() -> None:
    text = report.render_section(_data(16_000, 4_000))
    row = next(line for line in text.splitlines() if line.startswith("| REGISTER"))
    assert "16 000" in row and "4 000" in row and "0.25" in row
    assert text.startswith(report.BEGIN) and text.endswith(report.END)


def test_doc_update_keeps_hand_written_text(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    report.update_doc(doc, report.render_section(_data(16_000, 4_000)))
    doc.write_text("# Title\n\nintro\n\n" + doc.read_text().split("\n\n", 1)[1]
                   + "\n## Analysis\n\nhand-written\n")
    report.update_doc(doc, report.render_section(_data(20_000, 8_000)))
    text = doc.read_text()
    assert "intro" in text and "hand-written" in text
    assert text.count(report.BEGIN) == 1
    assert "**20 000**" in text and "**16 000**" not in text

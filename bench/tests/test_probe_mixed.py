"""Pure parts of the latency probe, the mixed step's judging and reporting, and voiplab's
bulk-import rows: no server, no SIPp."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import probe, report
from bench.runner import Group, judge_group, mixed_register_rate, probe_text
from bench.sipp import SippProcessResult, SippStats
from bench.users import BenchUser
from bench.voiplab_server import PHONE_PROFILE, device_batch
from gateway.sip.digest import build_challenge, ha1, parse_credentials, verify

# --- probe -----------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert probe.percentile(values, 50) == 50
    assert probe.percentile(values, 99) == 99
    assert probe.percentile(values, 100) == 100
    assert probe.percentile([7.0], 99) == 7.0
    assert probe.percentile([], 50) is None
    # 10 samples: p90 is the 9th, p99 the 10th (the worst)
    assert probe.percentile([float(i) for i in range(10, 0, -1)], 90) == 9.0
    assert probe.percentile([float(i) for i in range(10)], 99) == 9.0


def test_summary_is_in_ms_with_microsecond_resolution() -> None:
    ns = [412_345, 1_000_000, 2_500_499, 9_876_543]  # 0.412345 .. 9.876543 ms
    out = probe.summarize(ns)
    assert out["n"] == 4
    assert out["p50_ms"] == 1.0
    assert out["p90_ms"] == out["p99_ms"] == out["max_ms"] == 9.877
    assert out["mean_ms"] == pytest.approx((0.412345 + 1 + 2.500499 + 9.876543) / 4, abs=1e-3)
    empty = probe.summarize([])
    assert empty == {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None,
                     "mean_ms": None}


def test_register_request_and_response_parsing() -> None:
    msg = probe.register_request(server="127.0.0.1:5060", local="127.0.0.1:4000", username="u1",
                                 domain="bench.test", call_id="c1", cseq=3, branch="z9hG4bKab",
                                 tag="t1", expires=3600, authorization="Digest x").decode()
    head, _, body = msg.partition("\r\n\r\n")
    lines = head.split("\r\n")
    assert lines[0] == "REGISTER sip:127.0.0.1:5060 SIP/2.0" and body == ""
    assert "To: <sip:u1@bench.test>" in lines and "CSeq: 3 REGISTER" in lines
    assert "Authorization: Digest x" in lines and lines[-1] == "Content-Length: 0"
    resp = (b"SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/UDP 127.0.0.1:4000;branch=z9hG4bKab\r\n"
            b"WWW-Authenticate: Digest realm=\"bench.test\", nonce=\"n\"\r\nContent-Length: 0\r\n\r\n")
    status, headers = probe.parse_response(resp)  # type: ignore[misc]
    assert status == 401 and "z9hG4bKab" in headers["via"]
    assert headers["www-authenticate"].startswith("Digest realm")
    assert probe.parse_response(b"REGISTER sip:x SIP/2.0\r\n\r\n") is None


def test_probe_answers_a_challenge_with_uri_equal_to_the_request_uri() -> None:
    """The credentials the probe sends verify against the password, for the Request-URI
    it uses (voiplab compares uri= with the Request-URI)."""
    p = probe.Probe("127.0.0.1", 9, "u7", "secret", "bench.test")
    try:
        sent: list[bytes] = []
        answers = iter([
            (401, {"www-authenticate": build_challenge("bench.test", "abc", qop="auth")}, 1000),
            (200, {}, 2000),
        ])
        auth_values: list[str | None] = []

        def fake(authorization: str | None) -> tuple[int, dict[str, str], int]:
            auth_values.append(authorization)
            sent.append(b"")
            return next(answers)

        p._transaction = fake  # type: ignore[method-assign]
        result = probe.ProbeResult()
        p.exchange(result)
    finally:
        p.close()
    assert result.exchanges_ns == [3000] and result.round_trips_ns == [1000, 2000]
    assert auth_values[0] is None and auth_values[1] is not None
    creds = parse_credentials(auth_values[1])
    assert creds.uri == "sip:127.0.0.1:9" and creds.username == "u7"
    assert creds.qop == "auth"
    assert verify(creds, ha1(creds.algorithm, "u7", "bench.test", "secret"), "REGISTER")
    assert not verify(creds, ha1(creds.algorithm, "u7", "bench.test", "other"), "REGISTER")


def test_probe_counts_lost_and_refused_exchanges() -> None:
    p = probe.Probe("127.0.0.1", 9, "u7", "secret", "bench.test")
    try:
        result = probe.ProbeResult()
        p._transaction = lambda authorization: None  # type: ignore[method-assign,assignment]
        p.exchange(result)
        p._transaction = lambda authorization: (403, {}, 5)  # type: ignore[method-assign,assignment]
        p.exchange(result)
    finally:
        p.close()
    assert result.lost == 1 and result.errors == {"403": 1} and not result.exchanges_ns
    assert result.to_json()["exchange"]["n"] == 0
    assert probe_text(result.to_json()) == "no answered exchange (lost 1)"


# --- mixed step ----------------------------------------------------------------------------


def _result(calls: int, successful: int, retrans: int = 0, rtt: list[float] | None = None,
            created_at: float = 2.0) -> SippProcessResult:
    stats = SippStats(counters={"successful": successful, "created": calls, "failed": calls - successful,
                                "retransmissions": retrans},
                      created_curve=[(created_at / 2, calls // 2), (created_at, calls)])
    return SippProcessResult(role="uac", argv=["sipp", "-m", str(calls)], returncode=0 if
                             successful == calls else 1, wall_s=created_at + 1, cpu_s=0.5,
                             stats=stats, rtt_ms={1: rtt or []}, workdir=Path("/nonexistent"))


def test_mixed_register_rate_follows_the_ratio() -> None:
    assert mixed_register_rate(100, 4.0) == 400
    assert mixed_register_rate(150, 2.5) == 375
    assert mixed_register_rate(100, 0.0) == 0


def test_group_judging_passes_a_clean_group_and_names_each_failure() -> None:
    call = Group("call", Path("uac_call.xml"), 100, [], [1], hold=1.0)
    reg = Group("register", Path("register.xml"), 400, [], [2], hold=0.0)
    ok = judge_group(call, [_result(200, 200, rtt=[0.0, 4.0])])
    assert ok.reasons == [] and ok.achieved == 100 and ok.rtt == [0.0, 4.0]
    bad = judge_group(reg, [_result(800, 790, retrans=3)])
    assert "10 of 800 calls not successful" in bad.reasons
    assert "3 retransmissions" in bad.reasons and "SIPp exit codes [1]" in bad.reasons
    slow = judge_group(reg, [_result(800, 800, created_at=4.0)])  # 200/s of 400 asked
    assert slow.reasons == ["achieved 200/s < 90% of 400/s"]


def _mixed_step(rate: int, passed: bool) -> dict[str, object]:
    return {"rate": rate, "passed": passed, "reasons": [] if passed else ["REGISTER: 3 retransmissions"],
            "achieved_rate": rate * 0.99, "server_cpu_pct": 80.0, "sipp_cpu_pct": 30.0,
            "sipp_busiest_pct": 30.0, "background_cpu_pct": 1.0, "p50_ms": 0.0, "p99_ms": 4.0,
            "register_rate": rate * 4, "register_achieved_rate": rate * 4 * 0.98,
            "register_p50_ms": 0.0, "register_p99_ms": 8.0}


def _probe(p50: float, p99: float) -> dict[str, object]:
    return {"exchange": {"n": 290, "p50_ms": p50, "p90_ms": p50 * 2, "p99_ms": p99, "max_ms": p99 * 2,
                         "mean_ms": p50}, "round_trip": {"n": 580}, "lost": 0, "errors": {}}


def _mixed_data(k_best: int, v_best: int) -> dict[str, object]:
    def scen(best: int, p99: float) -> dict[str, object]:
        return {"scenario": "mixed", "best_rate": best, "note": "",
                "steps": [_mixed_step(best, True), _mixed_step(best * 2, False)],
                "half_load": {"rate": best // 2, "note": "", "step": _mixed_step(best // 2, True),
                              "probe": _probe(0.4, p99), "idle": _probe(0.1, 0.2)}}
    return {
        "started_utc": "2026-01-01T00:00:00", "mode": "quick", "command": "python -m bench",
        "duration_s": 10.0,
        "machine": {"nproc": 2, "cpu": "cpu", "memory_gb": 1.0, "os": "os", "kernel": "k",
                    "python": "3.11"},
        "sipp_version": "SIPp v3.6.1", "sipp_buff_size": 1,
        "plan": {"sipp_procs": 1, "uas_procs": 1, "step_s": 3.0, "mixed_register_ratio": 4.0,
                 "half_load": True, "probe_interval_ms": 20.0},
        "sysctl": {"net.core.rmem_max": 1}, "users": {"registrants": 10000, "call_pairs": 50},
        "scenarios": ["mixed"], "json_name": "bench-x.json",
        "ratios": {"mixed": round(v_best / k_best, 3)},
        "servers": {
            "kamailio": {"info": {"version": "5.6.3", "details": {"udp_workers": "2"}},
                         "results": {"mixed": scen(k_best, 0.9)}},
            "voiplab": {"info": {"version": "0.1.0", "details": {}},
                        "results": {"mixed": scen(v_best, 7.5)}},
        },
    }


def test_section_shows_the_mixed_runs_two_rates_and_the_half_load_latency() -> None:
    text = report.render_section(_mixed_data(2000, 400))
    row = next(line for line in text.splitlines() if line.startswith("| Mixed"))
    assert "**2 000** calls/s + 8 000 REGISTER/s" in row and "**400** calls/s + 1 600 REGISTER/s" in row
    assert "| –" in row  # no throughput target for the mixed run
    half = next(line for line in text.splitlines() if line.startswith("| mixed |"))
    assert "**p99 0.90 ms** at 1 000 calls/s" in half and "**p99 7.50 ms** at 200 calls/s" in half
    assert "idle: p50 0.10, p99 0.20 ms" in half
    assert half.endswith("| no |")  # voiplab's 7.5 ms misses the 5 ms target
    steps = [line for line in text.splitlines() if line.startswith("| 800 + 3 200 REG | FAIL")]
    assert steps and "REGISTER: 3 retransmissions" in steps[0]


def test_half_load_cell_says_why_nothing_was_measured() -> None:
    assert report.half_load_cell(None) == "not run"
    assert report.half_load_cell({"scenario": "call", "half_load": None}) == "–"
    cell = report.half_load_cell({"scenario": "call",
                                  "half_load": {"rate": 50, "note": "restart failed: boom"}})
    assert cell.startswith("not measured (restart failed")
    cell = report.half_load_cell({"scenario": "call", "half_load": {
        "rate": 50, "note": "", "step": {"passed": True}, "probe": {"error": "probe exit 1"},
        "idle": None}})
    assert cell.startswith("probe failed at 50/s")


# --- voiplab bulk rows -----------------------------------------------------------------------


def test_device_batch_packs_registrants_on_phones_and_gives_others_a_softphone() -> None:
    users = [(i, BenchUser(f"u{i}", "pw", str(20000 + i), role="register")) for i in range(1, 36)]
    users += [(100, BenchUser("c", "pw", "30000", role="caller")),
              (101, BenchUser("p", "pw", "30001", role="probe"))]
    devices = device_batch(users, 16)
    phones = [d for d in devices if d["hardware_profile"] == PHONE_PROFILE]
    assert [len(d["lines"]) for d in phones] == [16, 16, 3]
    assert len({d["mac"] for d in phones}) == 3
    line_users = [ln["user_id"] for d in devices for ln in d["lines"]]
    assert sorted(line_users) == sorted(uid for uid, _ in users)  # every user exactly one line
    soft = [d for d in devices if d["hardware_profile"] == "softphone-desktop"]
    assert [d["lines"] for d in soft] == [[{"user_id": 100}], [{"user_id": 101}]]
    assert len(device_batch(users, 1)) == 37
    with pytest.raises(ValueError):
        device_batch(users, 17)

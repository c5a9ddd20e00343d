"""Pure helpers of bench/memory.py: /proc parsing, provisioning payloads, figures, the doc block."""

from __future__ import annotations

import pytest

from bench import memory

STATUS = """Name:\tvoiplab
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t  912340 kB
VmSize:\t  850000 kB
VmHWM:\t  210000 kB
VmRSS:\t  204800 kB
RssAnon:\t  180000 kB
RssFile:\t   24000 kB
Threads:\t6
Cpus_allowed_list:\t0-1
"""

ROLLUP = """55d0c0a00000-7ffd1b5f2000 ---p 00000000 00:00 0                          [rollup]
Rss:              204800 kB
Pss:              190000 kB
Pss_Anon:         180000 kB
Pss_File:          10000 kB
"""


def test_parse_kb_fields_reads_the_asked_keys_only() -> None:
    got = memory.parse_kb_fields(STATUS, memory.STATUS_KEYS)
    assert got == {"VmSize": 850000, "VmHWM": 210000, "VmRSS": 204800, "RssAnon": 180000,
                   "RssFile": 24000, "Threads": 6}
    assert memory.parse_kb_fields(ROLLUP, memory.ROLLUP_KEYS) == {"Pss": 190000, "Pss_Anon": 180000}


def test_parse_kb_fields_ignores_malformed_lines() -> None:
    assert memory.parse_kb_fields("VmRSS: lots kB\nVmHWM:\n", ("VmRSS", "VmHWM")) == {}


def test_read_memory_of_this_process_has_rss() -> None:
    import os
    mem = memory.read_memory(os.getpid())
    assert mem["VmRSS"] > 0 and mem["VmHWM"] >= mem["VmRSS"]


def test_read_memory_of_a_missing_process_is_empty() -> None:
    assert memory.read_memory(2**22 + 7) == {}  # above the default pid_max


def test_bytes_per() -> None:
    assert memory.bytes_per(2048, 1024, 1024) == 1024.0
    assert memory.bytes_per(1000, 1100, 100) == -1024.0  # RSS may shrink; reported as is
    assert memory.bytes_per(2048, 1024, 0) is None


def test_mac_for_is_unique_and_bounded() -> None:
    assert memory.mac_for(0) == "001565000000"
    assert memory.mac_for(255) == "0015650000ff"
    assert len({memory.mac_for(i) for i in range(5000)}) == 5000
    with pytest.raises(ValueError):
        memory.mac_for(1 << 24)


def test_device_payloads_group_consecutive_users() -> None:
    rows = memory.device_payloads(list(range(1, 36)), lines_per_device=16)
    assert [len(r["lines"]) for r in rows] == [16, 16, 3]
    assert rows[1]["lines"][0] == {"user_id": 17}
    assert {r["hardware_profile"] for r in rows} == {memory.PROFILE}
    assert len({r["mac"] for r in rows}) == 3
    with pytest.raises(ValueError):
        memory.device_payloads([1], lines_per_device=0)


def test_batches_by_lines_never_split_a_device() -> None:
    rows = memory.device_payloads(list(range(100)), lines_per_device=16)  # 6 x 16 + 4
    batches = memory.batches_by_lines(rows, 40)
    assert [sum(len(r["lines"]) for r in b) for b in batches] == [32, 32, 36]
    assert [r for b in batches for r in b] == rows
    assert memory.batches_by_lines([], 40) == []


def _data(**over: object) -> dict:
    def sample(stage: str, rss_mb: float) -> dict:
        kb = int(rss_mb * 1024)
        return {"stage": stage, "at_s": 0.0, "mem": {"VmRSS": kb, "VmHWM": kb, "Pss": kb - 1024},
                "note": ""}

    data = {
        "samples": [sample("started", 120), sample("provisioned", 140), sample("registered", 260),
                    sample("registered_settled", 240), sample("registered_listed", 250),
                    sample("before_dialogs", 250), sample("dialogs_up", 300),
                    sample("dialogs_settled", 280)],
        "lines": 100_001, "bindings_listed": 100_000, "dialogs_listed": 10_000,
        "command": ".venv/bin/python -m bench.memory", "duration_s": 1200.0,
        "server": {"command": "voiplab serve ..."}, "provisioning": {"devices": 6251},
        "lines_per_device": 16, "dialogs": 10_000,
        "register": {"rate": 2000, "attempts": 1, "successful": 100_000},
        "calls": {"rate": 500, "hold_s": 120.0, "successful": 10_000, "failed": 0},
        "machine": {"cpu": "x", "nproc": 2, "memory_gb": 4.0, "os": "Debian", "kernel": "6"},
        "python": "CPython 3.11.7", "sipp_version": "SIPp v3.6.1", "started_utc": "2026-01-01T00:00:00",
        "json_name": "memory-20260101T000000.json",
    }
    data.update(over)
    return data


def test_derive_per_binding_and_per_dialog() -> None:
    d = memory.derive(_data())
    assert d["bytes_per_binding"] == pytest.approx(100 * 1024 * 1024 / 100_000)
    assert d["bytes_per_binding_with_transactions"] == pytest.approx(120 * 1024 * 1024 / 100_000)
    assert d["bytes_per_dialog"] == pytest.approx(30 * 1024 * 1024 / 10_000)
    assert d["bytes_per_line_provisioned"] == pytest.approx(20 * 1024 * 1024 / 100_001)
    assert d["rss_with_bindings_mb"] == 240.0
    assert d["target_pass"] is False
    d = memory.derive(_data(samples=_data()["samples"][:2], bindings_listed=0))
    assert "bytes_per_binding" not in d and "target_pass" not in d


def test_derive_uses_the_sample_after_the_last_register_run() -> None:
    data = _data(register={"rate": 2000, "attempts": 2, "successful": 60_000})
    data["samples"].insert(5, {"stage": "registered_listed", "at_s": 0.0, "note": "",
                               "mem": {"VmRSS": 260 * 1024}})
    d = memory.derive(data)  # an old run: settled was sampled after the first of two runs
    assert d["bindings_sample"] == "registered_listed"
    assert d["bytes_per_binding"] == pytest.approx(120 * 1024 * 1024 / 100_000)
    assert "bytes_per_binding_with_transactions" not in d
    data["register"]["sampled_after_last_run"] = True
    assert memory.derive(data)["bindings_sample"] == "registered_settled"


def test_render_section_is_one_marked_block_with_the_figures() -> None:
    data = _data()
    data["derived"] = memory.derive(data)
    text = memory.render_section(data)
    assert text.startswith(memory.BEGIN) and text.endswith(memory.END)
    assert text.count(memory.BEGIN) == 1 and text.count(memory.END) == 1
    assert "**FAIL**" in text and "1,049 B" in text  # 100 MiB / 100,000 bindings
    assert "| registered, settled (after 35 s) | 240.0 | -20.0 |" in text


def test_update_doc_text_inserts_after_the_bulk_block_then_replaces_in_place() -> None:
    doc = ("# Benchmarks\n\nintro\n<!-- bench:results:begin -->\nA\n<!-- bench:results:end -->\n"
           "<!-- bulk-devices:begin -->\nB\n<!-- bulk-devices:end -->\n\n## Later\ntext\n")
    first = memory.update_doc_text(doc, f"{memory.BEGIN}\none\n{memory.END}")
    assert first.index("<!-- bulk-devices:end -->") < first.index(memory.BEGIN) < first.index("## Later")
    second = memory.update_doc_text(first, f"{memory.BEGIN}\ntwo\n{memory.END}")
    assert "one" not in second and second.count(memory.BEGIN) == 1
    assert second.replace(f"{memory.BEGIN}\ntwo\n{memory.END}", "") == \
        first.replace(f"{memory.BEGIN}\none\n{memory.END}", "")


def test_update_doc_text_appends_without_the_bulk_block() -> None:
    out = memory.update_doc_text("# Benchmarks\n", f"{memory.BEGIN}\nx\n{memory.END}")
    assert out == f"# Benchmarks\n\n{memory.BEGIN}\nx\n{memory.END}\n"
    out = memory.update_doc_text("# B\n<!-- bulk-devices:end -->\n", f"{memory.BEGIN}\nx\n{memory.END}")
    assert out == f"# B\n<!-- bulk-devices:end -->\n\n{memory.BEGIN}\nx\n{memory.END}\n"

"""bench.steady runs one step at a fixed rate against a real voiplab and reports CPU per process."""

from __future__ import annotations

import re
import shutil

import pytest

from bench import steady


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp (Debian sip-tester) is not installed")
def test_a_short_call_step_reports_every_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert steady.main(["call", "5", "--seconds", "2", "--registrants", "10", "--registrar-workers", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"call at 5/s for [\d.]+ s: passed", out), out
    assert re.search(r"main +pid \d+: +[\d.]+ % of a core", out), out
    assert re.search(r"worker 1 +pid \d+:", out), out
    m = re.search(r"all processes: ([\d.]+) %, (\d+) µs per call", out)
    assert m is not None and float(m.group(1)) > 0, out

"""bench.memparts runs end to end on small inputs and reports what it measured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import memparts


def test_binding_reports_bytes_per_binding_and_an_empty_replay_guard(capsys: pytest.CaptureFixture[str]) -> None:
    assert memparts.main(["binding", "--phones", "20"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"bindings (\d+); traced ([\d,]+) B per binding; replay-guard entries left (\d+)", out)
    assert m is not None, out
    assert int(m.group(1)) == 20 and int(m.group(2).replace(",", "")) > 0 and m.group(3) == "0"


def test_directory_builds_a_database_and_measures_a_fresh_load(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "lines.db"
    assert memparts.main(["directory", "--lines", "40", "--db", str(db)]) == 0
    out = capfd.readouterr().out
    assert db.exists() and "built" in out
    assert re.search(r"lines 40; load [\d.]+ s; RSS", out), out
    assert "B/line live" in out

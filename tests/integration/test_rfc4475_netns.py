"""RFC 4475 torture messages against a running gateway, inside a loopback-only namespace.

Both the gateway and the sender run in a fresh network namespace whose only interface is `lo`
(tests.peers.rfc4475_run refuses to run otherwise), so the messages' foreign Via and Request-URI
addresses cannot reach any real network. Every message in tests/data/rfc4475/INDEX.tsv (and
INDEX-extra.tsv when present) must get its expected verdict (tests.peers.rfc4475.judge), and the
gateway must still answer OPTIONS afterwards. On failure the per-message table is printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.netns import LoopbackNamespace, NamespaceUnavailable
from tests.peers.rfc4475 import load_messages

pytestmark = pytest.mark.netns

REPO_ROOT = Path(__file__).resolve().parents[2]
MESSAGES = REPO_ROOT / "tests" / "data" / "rfc4475"
MAX_WAIT = 1.0  # seconds per message when no final answer comes


def test_rfc4475_messages_get_expected_verdicts(tmp_path: Path) -> None:
    messages = load_messages(MESSAGES)
    try:
        ns = LoopbackNamespace()
        ns.create()
    except NamespaceUnavailable as exc:
        pytest.skip(f"cannot create a loopback-only network namespace: {exc}")
    mode = ns.mode
    try:
        cmd = ns.wrap(
            [
                sys.executable,
                "-m",
                "tests.peers.rfc4475_run",
                "--messages",
                str(MESSAGES),
                "--workdir",
                str(tmp_path),
                "--max-wait",
                str(MAX_WAIT),
            ]
        )
        budget = 60 + len(messages) * (MAX_WAIT + 0.5)
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=budget)
    finally:
        ns.delete()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"driver printed no result (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[-1])
    assert "error" not in result, f"{result['error']}\n{result.get('log_tail', '')}"
    assert result["interfaces"] == ["lo"], result["interfaces"]

    report = [
        f"namespace: {mode}; gateway: {' '.join(result['gateway_command'])}",
        f"OPTIONS before: {result['pre_probe']}; after: {result['post_probe']}",
        f"live calls afterwards: {result['live_calls']}",
        f"gateway alive after the messages: {result['alive_after_messages']}; "
        f"exit status on SIGTERM: {result['gateway_rc']}",
        result["table"],
    ]
    if result["tracebacks"]:
        report += ["--- tracebacks in the gateway log ---", *result["tracebacks"]]
    report += ["--- gateway log (tail) ---", result["log_tail"]]
    text = "\n".join(report)

    assert result["pre_probe"] == "SIP/2.0 200 OK", "gateway did not answer OPTIONS at all\n" + text
    sent = {o["name"] for o in result["outcomes"]}
    assert sent == {m.name for m in messages}, text
    failed = [o["name"] for o in result["outcomes"] if not o["ok"]]
    assert not failed, f"wrong verdict for {failed}\n{text}"
    assert result["alive_after_messages"], "gateway died\n" + text
    assert result["post_probe"] == "SIP/2.0 200 OK", "no OPTIONS answer afterwards\n" + text
    assert not result["tracebacks"], "exceptions escaped in the gateway\n" + text
    assert result["live_calls"] == [], "torture INVITEs left live calls behind\n" + text

"""CPU time of a process and its descendants, read from /proc.

Kamailio forks its workers and timers, so the CPU a server burns is the sum over
its process tree; voiplab is one process (threads are included in its own
counters). Reading /proc before and after a step is cheap and needs nothing
from the server.
"""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _ppid_and_ticks(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime+stime in clock ticks), or None when the process is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = raw.rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); ppid is field 4, utime 14, stime 15
    return int(fields[1]), int(fields[11]) + int(fields[12])


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant of it."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        info = _ppid_and_ticks(int(entry.name))
        if info is not None:
            children.setdefault(info[0], []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds consumed so far by `root` and its live descendants."""
    ticks = 0
    for pid in process_tree(root):
        info = _ppid_and_ticks(pid)
        if info is not None:
            ticks += info[1]
    return ticks / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs, /proc/stat), so that
    busy time minus what the server and SIPp used is the background load: other work on
    a shared machine that competes with the bench for the same cores."""
    fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(values) - values[3] - values[4]) / CLK_TCK

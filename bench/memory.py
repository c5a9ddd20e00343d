"""Memory of a real `voiplab serve`: 100,000 registered bindings and 10,000 live dialogs.

    .venv/bin/python -m bench.memory [--bindings 100000] [--dialogs 10000] [--doc docs/benchmarks.md]

Issue #6, deliverable 3; target: 100,000 bindings in <= 200 MB RSS. One voiplab process,
started as the call bench starts it (`bench.voiplab_server.VoiplabServer`: same command line,
R27 flood thresholds raised), is driven over 127.0.0.1 and its memory read from
/proc/<pid>/status (VmRSS, VmHWM, RssAnon) and /proc/<pid>/smaps_rollup (Pss) at each stage:

1. started: empty database, API and SIP listening.
2. provisioned: through the public API, one account and location, then the users one by one
   over 4 connections (the API has no bulk user endpoint: this is the slow part), the devices
   in `POST /accounts/{id}/devices:bulk` batches of 2,000 lines (Yealink T54W, 16 lines each,
   so the bind-location + activate calls are one per 16 lines), then bind + activate per device.
   The directory snapshot now holds every line.
3. registered: SIPp (`sipp/register_callee.xml`: digest, Expires 3600, Contact = the
   client's own address) registers every line once; REGISTERs still in their 32 s Timer J
   are in memory then, so the figure for bytes per binding is taken after they have gone
   ("registered, settled"). The binding count is read from the gateway
   (`GET /api/v1/registrations`); lines the gateway does not list are registered again.
4. dialogs: a SIPp UAS with its own line (registered from the UAS port) answers; a SIPp UAC
   (`sipp/uac_hold.xml`) places `--dialogs` calls from distinct registered lines at
   `--call-rate`/s, each held `--hold` s. Memory is read once every call is up, and again
   after the setup transactions have gone; the gateway's `GET /api/v1/calls` gives the
   live count. Then the calls end (BYE) and memory is read again, right away and settled.

Bytes per binding = (registered, settled - provisioned) / bindings the gateway lists;
bytes per dialog = (dialogs held, settled - before dialogs) / calls the gateway lists.
Raw JSON goes to bench/results/memory-<time>.json; `--doc` writes the table into its own
block of docs/benchmarks.md. The run reports; it never fails on the figures (exit 1 only
when a stage could not be reached).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import sipp, sysctl
from bench.cli import SOCKET_SYSCTLS
from bench.report import machine_info
from bench.servers import ServerError, env_pairs, free_port
from bench.users import SipAccount, write_callee_csv, write_calls_csv
from bench.voiplab_server import API, LOCATION, Api, VoiplabServer

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "bench.test"
TARGET_MB = 200.0
SUSPICIOUS_BYTES_PER_BINDING = 2048
BEGIN, END = "<!-- memory:begin -->", "<!-- memory:end -->"
AFTER = "<!-- bulk-devices:end -->"  # a new block goes right after the bulk-import block
PROFILE, OUI, PROFILE_LINES = "yealink-t54w", "001565", 16
EXTENSION_BASE = 100_000
LINES_PER_BULK = 2_000  # lines per devices:bulk request: 125 T54W, a size ops script; a 20,000-line
# request holds its JSON, models and passwords (~4 KB a line) at once, and RSS keeps that peak
USER_CLIENTS = 4  # users are created over this many keep-alive connections at once
SETTLE_S = 35.0  # RFC 3261 Timer J / Timer H: 64 * T1 = 32 s, plus a margin
T = TypeVar("T")


# --- /proc ---------------------------------------------------------------------------------

_KB_LINE = re.compile(r"^(\w+):\s+(\d+)(?:\s+kB)?\s*$")


def parse_kb_fields(text: str, keys: Sequence[str]) -> dict[str, int]:
    """`Key:   1234 kB` lines of /proc/<pid>/status or smaps_rollup -> {key: value}, for
    the keys asked (values as written: kB for sizes, a plain count for Threads)."""
    wanted = set(keys)
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _KB_LINE.match(line.strip())
        if m and m.group(1) in wanted:
            out[m.group(1)] = int(m.group(2))
    return out


STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "VmSize", "Threads")
ROLLUP_KEYS = ("Pss", "Pss_Anon")


def read_memory(pid: int) -> dict[str, int]:
    """The process's memory figures now (kB), empty when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = parse_kb_fields(status, STATUS_KEYS)
    with contextlib.suppress(OSError):
        out |= parse_kb_fields(Path(f"/proc/{pid}/smaps_rollup").read_text(), ROLLUP_KEYS)
    return out


@dataclass
class Sample:
    stage: str
    at_s: float  # seconds since the server started
    mem: dict[str, int]  # kB (Threads: count)
    note: str = ""

    @property
    def rss_kb(self) -> int:
        return self.mem.get("VmRSS", 0)


def bytes_per(after_kb: int, before_kb: int, count: int) -> float | None:
    """(after - before) in bytes per item; None without items."""
    if count <= 0:
        return None
    return (after_kb - before_kb) * 1024 / count


def mb(kb: int) -> float:
    return kb / 1024


# --- provisioning --------------------------------------------------------------------------

def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def mac_for(index: int, oui: str = OUI) -> str:
    """A unique MAC per device index under one OUI (24 bits: up to 16.7 M devices)."""
    if not 0 <= index < 1 << 24:
        raise ValueError(f"device index {index} out of range")
    return f"{oui}{index:06x}"


def device_payloads(user_ids: Sequence[int], lines_per_device: int = PROFILE_LINES,
                    first_device: int = 0) -> list[dict[str, Any]]:
    """Bulk-import rows: consecutive users share a device, `lines_per_device` per device
    (the last one may have fewer)."""
    if lines_per_device < 1:
        raise ValueError("lines_per_device must be at least 1")
    rows = []
    for k, group in enumerate(chunked(user_ids, lines_per_device)):
        d = first_device + k
        rows.append({"name": f"mem {d}", "hardware_profile": PROFILE, "mac": mac_for(d),
                     "lines": [{"user_id": uid} for uid in group]})
    return rows


def batches_by_lines(rows: Sequence[dict[str, Any]], max_lines: int) -> list[list[dict[str, Any]]]:
    """Split bulk rows into requests of at most `max_lines` lines (a row is never split)."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    count = 0
    for row in rows:
        n = len(row["lines"])
        if current and count + n > max_lines:
            out.append(current)
            current, count = [], 0
        current.append(row)
        count += n
    if current:
        out.append(current)
    return out


class Provisioner:
    """Creates the lines through the public API and returns their SIP accounts in order."""

    def __init__(self, api: Api, say: Callable[[str], None]) -> None:
        self.api = api
        self.say = say
        self.timings: dict[str, float] = {}

    def run(self, lines: int, lines_per_device: int) -> list[SipAccount]:
        api = self.api
        t0 = time.perf_counter()
        account = api.ok("POST", f"{API}/accounts", {"name": "memory bench", "plan": "connect",
                                                     "region": "US"})
        account_id = int(account["id"])
        location_id = int(api.ok("POST", f"{API}/accounts/{account_id}/locations", dict(LOCATION))["id"])
        user_ids: list[int] = []
        extensions: dict[int, str] = {}
        clients: list[Api] = []
        mine = threading.local()  # one connection per pool thread (http.client is not thread-safe)

        def create(i: int) -> int:
            client = getattr(mine, "api", None)
            if client is None:
                client = mine.api = api.clone()
                clients.append(client)
            user = client.ok("POST", f"{API}/accounts/{account_id}/users", {
                "named_user_id": f"mem{i}@{DOMAIN}", "display_name": f"Mem {i}",
                "extension": str(EXTENSION_BASE + i)})
            return int(user["id"])

        with ThreadPoolExecutor(USER_CLIENTS) as pool:  # the API's writes serialise; this hides the round trips
            for i, uid in enumerate(pool.map(create, range(lines))):
                user_ids.append(uid)
                extensions[uid] = str(EXTENSION_BASE + i)
                if (i + 1) % 10_000 == 0:
                    self.say(f"  users: {i + 1:,}/{lines:,} ({(i + 1) / (time.perf_counter() - t0):.0f}/s)")
        for c in clients:
            c.close()
        t1 = time.perf_counter()
        self.timings["users_s"] = t1 - t0
        accounts: list[SipAccount] = []
        device_ids: list[int] = []
        rows = device_payloads(user_ids, lines_per_device)
        for batch in batches_by_lines(rows, LINES_PER_BULK):
            out = api.ok("POST", f"{API}/accounts/{account_id}/devices:bulk", {"devices": batch})
            for dev in sorted(out["devices"], key=lambda d: d["row"]):
                device_ids.append(int(dev["id"]))
                for line in sorted(dev["lines"], key=lambda ln: ln["index"]):
                    accounts.append(SipAccount(username=str(line["sip_username"]),
                                               password=str(line["sip_password"]),
                                               dial=extensions[int(line["user_id"])]))
            self.say(f"  devices: {len(device_ids):,} ({len(accounts):,} lines) imported")
        t2 = time.perf_counter()
        self.timings["bulk_devices_s"] = t2 - t1
        for k, device_id in enumerate(device_ids, 1):
            api.ok("POST", f"{API}/devices/{device_id}/location", {"location_id": location_id})
            api.ok("POST", f"{API}/devices/{device_id}/activate")
            if k % 2_000 == 0:
                self.say(f"  activated {k:,}/{len(device_ids):,} devices")
        self.timings["activate_s"] = time.perf_counter() - t2
        self.timings["devices"] = len(device_ids)
        if len(accounts) != lines:
            raise ServerError(f"asked for {lines} lines, the bulk import returned {len(accounts)}")
        return accounts


# --- SIPp ----------------------------------------------------------------------------------

def start_sipp(opts: sipp.SippOptions, workdir: Path, *, scenario: str, remote: str,
               local_port: int, inf: Path, rate: float, calls: int, limit: int, timeout_s: float,
               extra: Sequence[str] = ()) -> sipp.SippProcess:
    argv = sipp.client_argv(opts, scenario=sipp.SCENARIOS / scenario, remote=remote,
                            local_port=local_port, media_port=free_port(opts.local_ip), inf=inf,
                            rate=rate, calls=calls, limit=limit, timeout_s=timeout_s,
                            trace_rtt=False) + list(extra)
    return sipp.SippProcess("uac", argv, workdir)


def watch(proc: sipp.SippProcess, deadline: float, say: Callable[[str], None],
          until: Callable[[sipp.SippStats], bool] | None = None) -> bool:
    """Follow a SIPp client (progress every 10 s) until it exits or `deadline` passes (False),
    or until `until(stats)` holds (True; the process keeps running)."""
    label = Path(proc.argv[proc.argv.index("-sf") + 1]).name
    last_say = time.monotonic()
    while time.monotonic() < deadline and not proc.poll():
        time.sleep(0.5)
        stats = sipp.read_stats(proc.workdir / "stat.csv")
        if time.monotonic() - last_say >= 10:
            last_say = time.monotonic()
            say(f"  SIPp {label}: created {stats.get('created'):,}, successful "
                f"{stats.get('successful'):,}, failed {stats.get('failed'):,}, "
                f"current {stats.get('current_calls'):,}")
        if until is not None and until(stats):
            return True
    return False


# --- report --------------------------------------------------------------------------------

STAGE_LABELS = {
    "started": "started (empty database)",
    "provisioned": "provisioned (directory holds every line)",
    "registered": "registered (REGISTER transactions still in Timer J)",
    "registered_settled": "registered, settled (after 35 s)",
    "registered_listed": "after `GET /registrations` (verification)",
    "before_dialogs": "callee registered, UAS up (before dialogs)",
    "dialogs_up": "dialogs up (setup transactions alive)",
    "dialogs_settled": "dialogs held, settled",
    "dialogs_listed": "after `GET /calls` (verification)",
    "dialogs_ended": "dialogs ended (BYE transactions alive)",
    "dialogs_ended_settled": "dialogs ended, settled",
}


def derive(data: dict[str, Any]) -> dict[str, Any]:
    """Headline figures from the samples: bytes per binding and per dialog, target check."""
    rss = {s["stage"]: s["mem"].get("VmRSS", 0) for s in data["samples"]}
    bindings = data.get("bindings_listed") or 0
    dialogs = data.get("dialogs_listed") or 0
    out: dict[str, Any] = {}
    if "provisioned" in rss and "started" in rss:
        out["bytes_per_line_provisioned"] = bytes_per(rss["provisioned"], rss["started"],
                                                      data.get("lines", 0))
    reg = data.get("register", {})
    # Runs before the retry fix sampled "registered_settled" after the first SIPp run only; when
    # that run left lines unregistered, the first sample holding every binding is the one taken
    # after the gateway's final listing (an upper bound: the listing itself allocates).
    with_all = "registered_settled"
    if reg.get("attempts", 1) > 1 and not reg.get("sampled_after_last_run") and "registered_listed" in rss:
        with_all = "registered_listed"
    out["bindings_sample"] = with_all
    if with_all in rss and "provisioned" in rss:
        out["bytes_per_binding"] = bytes_per(rss[with_all], rss["provisioned"], bindings)
        out["rss_with_bindings_mb"] = round(mb(rss[with_all]), 1)
        out["target_pass"] = mb(rss[with_all]) <= TARGET_MB
    if "registered" in rss and "provisioned" in rss and with_all == "registered_settled":
        out["bytes_per_binding_with_transactions"] = bytes_per(rss["registered"], rss["provisioned"],
                                                               bindings)
    if "dialogs_settled" in rss and "before_dialogs" in rss:
        out["bytes_per_dialog"] = bytes_per(rss["dialogs_settled"], rss["before_dialogs"], dialogs)
    if "dialogs_up" in rss and "before_dialogs" in rss:
        out["bytes_per_dialog_with_transactions"] = bytes_per(rss["dialogs_up"], rss["before_dialogs"],
                                                              dialogs)
    return out


def _fmt_bytes(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} B"


def render_section(data: dict[str, Any]) -> str:
    d = data["derived"]
    m = data["machine"]
    rows = []
    prev: int | None = None
    for s in data["samples"]:
        rss = s["mem"].get("VmRSS", 0)
        delta = "" if prev is None else f"{mb(rss - prev):+.1f}"
        pss = s["mem"].get("Pss")
        rows.append(f"| {STAGE_LABELS.get(s['stage'], s['stage'])} | {mb(rss):.1f} | {delta} | "
                    f"{'' if pss is None else f'{mb(pss):.1f}'} | {mb(s['mem'].get('VmHWM', 0)):.1f} | "
                    f"{s.get('note', '')} |")
        prev = rss
    target = d.get("target_pass")
    verdict = "n/a" if target is None else ("**pass**" if target else "**FAIL**")
    prov = data.get("provisioning", {})
    runs = "; ".join(f"{r.get('successful', 0):,}/{r['users']:,} at {r['rate']:,}/s"
                     for r in data["register"].get("runs", []))
    return f"""{BEGIN}
## Memory: {data['bindings_listed'] or 0:,} bindings and {data['dialogs_listed'] or 0:,} live dialogs (issue #6)

`{data['command']}` (`bench/memory.py`, {data['duration_s'] / 60:.0f} min). One real `voiplab serve`
(same command line as `make bench`: `{data['server']['command']}`), provisioned through its API
({data['lines']:,} lines on {prov.get('devices', 0):,} Yealink T54W with {data['lines_per_device']} lines each:
users one by one over {USER_CLIENTS} connections in {prov.get('users_s', 0):.0f} s, devices in `devices:bulk` batches of {LINES_PER_BULK:,} lines in
{prov.get('bulk_devices_s', 0):.0f} s, bind location + activate per device in {prov.get('activate_s', 0):.0f} s),
then driven by SIPp over 127.0.0.1: every line registers once with digest (Expires 3600,
{data['register']['rate']:,}/s), then {data['dialogs']:,} calls at {data['calls']['rate']:,}/s from distinct
lines to one SIPp UAS are held {data['calls']['hold_s']:.0f} s (`sipp/uac_hold.xml`). "Settled" = {SETTLE_S:.0f} s
later, when the 32 s transaction timers (Timer J/H) have let go. RSS = `VmRSS`, PSS from
`smaps_rollup`, peak = `VmHWM` (all MiB).

| Stage | RSS | Δ RSS | PSS | peak | notes |
|---|---:|---:|---:|---:|---|
{chr(10).join(rows)}

| Figure | Value |
|---|---|
| bindings the gateway lists (`GET /api/v1/registrations`) | {data['bindings_listed'] or 0:,} (SIPp runs: {runs or 'none'}; an exchange SIPp saw fail may still have bound, e.g. when a late 401 retransmission made SIPp abort after sending the authenticated REGISTER) |
| live calls the gateway lists (`GET /api/v1/calls`) | {data['dialogs_listed'] or 0:,} {data.get('dialog_states', '')} (SIPp: {data['calls'].get('current_at_sample', 0):,} current, {data['calls'].get('successful', 0):,} completed, {data['calls'].get('failed', 0):,} failed) |
| directory, per provisioned line (provisioned − started) | {_fmt_bytes(d.get('bytes_per_line_provisioned'))} |
| **per binding** ({STAGE_LABELS[d.get('bindings_sample', 'registered_settled')].split(' (')[0]} − provisioned) | **{_fmt_bytes(d.get('bytes_per_binding'))}** ({_fmt_bytes(d.get('bytes_per_binding_with_transactions'))} with the REGISTER transactions alive) |
| **per dialog** (dialogs held, settled − before dialogs) | **{_fmt_bytes(d.get('bytes_per_dialog'))}** ({_fmt_bytes(d.get('bytes_per_dialog_with_transactions'))} with the setup transactions alive) |
| RSS with the bindings (target ≤ {TARGET_MB:.0f} MB) | {d.get('rss_with_bindings_mb', 0):.1f} MiB: {verdict} |

RSS seldom goes down: what Python frees stays with the process (pymalloc arenas, the glibc
heap) and is reused, so a settled row equal to the row before means the transactions' memory
was freed into the process, not returned; each Δ is an upper bound of what that stage keeps,
and a stage that comes after a bigger peak may look cheaper than it is.

Machine: {m['cpu']}, {m['nproc']} CPUs, {m.get('memory_gb', '?')} GB, {m['os']}, kernel {m['kernel']};
{data['python']}; {data['sipp_version']}; {data['started_utc']} UTC. Raw figures:
`bench/results/{data['json_name']}`.
{END}"""


def update_doc_text(text: str, section: str) -> str:
    """Replace the memory block, or insert it after the bulk-devices block (else at the end).
    Nothing outside the block changes."""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        return head + section + rest.split(END, 1)[1]
    if AFTER in text:
        head, rest = text.split(AFTER, 1)
        return head + AFTER + "\n\n" + section + "\n" + rest.lstrip("\n") if rest.strip() \
            else head + AFTER + "\n\n" + section + "\n"
    return text.rstrip("\n") + "\n\n" + section + "\n"


# --- the run -------------------------------------------------------------------------------

class MemoryBench:
    def __init__(self, args: argparse.Namespace, workdir: Path, say: Callable[[str], None]) -> None:
        self.args = args
        self.workdir = workdir
        self.say = say
        self.opts = sipp.SippOptions()
        self.server = VoiplabServer(workdir, "127.0.0.1", free_port(), free_port(), DOMAIN,
                                    binary=args.voiplab, env=args.voiplab_env)
        self.remote = f"{self.server.sip_host}:{self.server.sip_port}"
        self.samples: list[Sample] = []
        self.t0 = 0.0
        self.data: dict[str, Any] = {}

    def sample(self, stage: str, note: str = "") -> Sample:
        s = Sample(stage, round(time.monotonic() - self.t0, 1), read_memory(self.server.pid()), note)
        self.samples.append(s)
        self.say(f"[{s.at_s:7.1f} s] {stage:24s} RSS {mb(s.rss_kb):7.1f} MiB  "
                 f"PSS {mb(s.mem.get('Pss', 0)):7.1f} MiB  peak {mb(s.mem.get('VmHWM', 0)):7.1f} MiB"
                 + (f"  ({note})" if note else ""))
        return s

    def api(self) -> Api:
        return Api(self.server.sip_host, self.server.api_port, self.server.token, timeout=900)

    def settle(self, seconds: float) -> None:
        self.say(f"  waiting {seconds:.0f} s for the transaction timers")
        time.sleep(seconds)

    def listed_registrations(self) -> set[str]:
        api = self.api()
        try:
            rows = api.ok("GET", f"{API}/registrations")
        finally:
            api.close()
        return {r["aor"] for r in rows}

    def register(self, accounts: Sequence[SipAccount]) -> dict[str, Any]:
        """Register every line (Contact = the SIPp client's address). When SIPp reports
        failures, the lines the gateway does not list are registered again (at most 500/s),
        up to three runs in all; 'registered' is sampled after the last run, then 'settled'
        after the transaction timers, then the gateway's listing is the verified count."""
        a = self.args
        port = free_port(self.opts.local_ip)
        contact = f"{self.opts.local_ip}:{port}"
        todo = list(accounts)
        info: dict[str, Any] = {"rate": a.register_rate, "attempts": 0, "successful": 0,
                                "failed": 0, "runs": []}
        wanted = {acc.username for acc in accounts}
        for attempt in range(1, 4):
            csv_path = write_callee_csv(self.workdir / f"register-{attempt}.csv", todo, DOMAIN, [contact])
            rate = a.register_rate if attempt == 1 else min(a.register_rate, 500)
            t = time.monotonic()
            timeout = len(todo) / rate + 60
            proc = start_sipp(self.opts, self.workdir / f"register-{attempt}",
                              scenario="register_callee.xml", remote=self.remote, local_port=port,
                              inf=csv_path, rate=rate, calls=len(todo), limit=max(100, rate),
                              timeout_s=timeout)
            watch(proc, time.monotonic() + timeout + 5, self.say)
            res = proc.finish(time.monotonic() + 5)
            run = {"users": len(todo), "rate": rate, "wall_s": round(time.monotonic() - t, 1),
                   "returncode": res.returncode, **res.stats.counters}
            info["runs"].append(run)
            info["attempts"] = attempt
            info["successful"] += res.stats.get("successful")
            info["failed"] += res.stats.get("failed")
            self.say(f"  register run {attempt}: {res.stats.get('successful'):,}/{len(todo):,} "
                     f"successful in {run['wall_s']} s (exit {res.returncode})")
            if res.stats.get("successful") >= len(todo) or attempt == 3:
                break
            # which lines failed: only the gateway knows (this listing allocates before the sample)
            missing = wanted - self.listed_registrations()
            if not missing:
                break
            self.say(f"  the gateway lacks {len(missing):,} of {len(wanted):,}: registering them again")
            todo = [acc for acc in accounts if acc.username in missing]
        self.sample("registered", f"{info['successful']:,} REGISTER exchanges ok in "
                                  f"{info['attempts']} SIPp run(s)")
        self.settle(SETTLE_S)
        self.sample("registered_settled")
        info["listed_after_run"] = len(self.listed_registrations() & wanted)
        info["sampled_after_last_run"] = True
        return info

    def dialogs(self, callers: Sequence[SipAccount], callee: SipAccount) -> dict[str, Any]:
        a = self.args
        uas_port = free_port(self.opts.local_ip)
        callee_csv = write_callee_csv(self.workdir / "callee.csv", [callee], DOMAIN,
                                      [f"{self.opts.local_ip}:{uas_port}"])
        res = start_sipp(self.opts, self.workdir / "callee-register", scenario="register_callee.xml",
                         remote=self.remote, local_port=uas_port, inf=callee_csv, rate=1, calls=1,
                         limit=1, timeout_s=20).finish(time.monotonic() + 25)
        if res.stats.get("successful") != 1:
            raise ServerError("callee registration failed: " + res.error_tail())
        creation_s = len(callers) / a.call_rate
        total_s = creation_s + a.hold + 60
        uas = sipp.SippProcess("uas", sipp.server_argv(
            self.opts, scenario=sipp.SCENARIOS / "uas.xml", local_port=uas_port,
            media_port=free_port(self.opts.local_ip), timeout_s=total_s + 60), self.workdir / "uas")
        time.sleep(0.5)
        self.sample("before_dialogs")
        calls_csv = write_calls_csv(self.workdir / "calls.csv", callers, [callee] * len(callers), DOMAIN)
        info: dict[str, Any] = {"rate": a.call_rate, "hold_s": a.hold, "calls": len(callers)}
        state: dict[str, Any] = {"up_at": None}
        n = len(callers)

        def progress(stats: sipp.SippStats) -> bool:
            if stats.get("failed"):
                return True
            if state["up_at"] is None and stats.get("created") >= n and stats.get("current_calls") >= n:
                state["up_at"] = time.monotonic()
                return True
            return False

        t_calls = time.monotonic()
        uac = start_sipp(self.opts, self.workdir / "uac", scenario="uac_hold.xml", remote=self.remote,
                         local_port=free_port(self.opts.local_ip), inf=calls_csv, rate=a.call_rate,
                         calls=n, limit=n + 100, timeout_s=total_s,
                         extra=["-d", str(int(a.hold * 1000)), "-auth_uri", f"{callee.dial}@{DOMAIN}"])
        if not watch(uac, t_calls + creation_s + min(a.hold, 60), self.say, until=progress) \
                or state["up_at"] is None:
            uac.signal(signal.SIGUSR1)
            result = uac.finish(time.monotonic() + 5)
            uas.finish(time.monotonic() + 1)
            raise ServerError(f"not all {n} calls came up: {result.stats.counters}\n"
                              + result.error_tail())
        stats = sipp.read_stats(uac.workdir / "stat.csv")
        if stats.get("failed"):
            self.say(f"  SIPp reports {stats.get('failed')} failed calls: {stats.counters}")
        info["setup_s"] = round(time.monotonic() - t_calls, 1)
        self.sample("dialogs_up", f"SIPp: {stats.get('current_calls'):,} current")
        wait = SETTLE_S - (time.monotonic() - (state["up_at"] or time.monotonic()))
        if a.hold - info["setup_s"] < SETTLE_S + 10:
            self.say("  hold too short to wait for the setup transactions; sampling now")
        elif wait > 0:
            self.settle(wait)
        stats = sipp.read_stats(uac.workdir / "stat.csv")
        info["current_at_sample"] = stats.get("current_calls")
        self.sample("dialogs_settled", f"SIPp: {stats.get('current_calls'):,} current")
        api = self.api()
        try:
            calls = api.ok("GET", f"{API}/calls")
        finally:
            api.close()
        self.data["dialogs_listed"] = len(calls)
        states = Counter(str(c.get("state")) for c in calls)
        self.data["dialog_states"] = "(" + ", ".join(f"{k} {v:,}" for k, v in sorted(states.items())) + ")"
        self.say(f"  the gateway lists {len(calls):,} live calls {self.data['dialog_states']}")
        self.sample("dialogs_listed")
        result = uac.finish(t_calls + total_s + 10)
        uas_result = uas.finish(time.monotonic() + 2)
        info.update({k: result.stats.get(k) for k in ("successful", "failed", "retransmissions",
                                                      "unexpected")})
        info["returncode"] = result.returncode
        info["uas"] = {k: uas_result.stats.get(k) for k in ("successful", "failed", "retransmissions")}
        self.say(f"  calls: {info['successful']:,} completed, {info['failed']:,} failed "
                 f"(exit {result.returncode}); UAS {info['uas']}")
        self.sample("dialogs_ended")
        self.settle(SETTLE_S)
        self.sample("dialogs_ended_settled")
        return info

    def run(self) -> dict[str, Any]:
        a = self.args
        d = self.data
        self.t0 = time.monotonic()
        self.server._start()
        info = vars(self.server.info())
        d["server"] = {"version": info["version"], "environment": info["details"]["environment"],
                       "command": info["details"]["command"].replace(str(ROOT) + "/", "")}
        time.sleep(2.0)
        self.sample("started")
        lines = a.bindings + 1  # + the callee
        self.say(f"provisioning {lines:,} lines ({a.lines_per_device} per device) through the API")
        api = self.api()
        try:
            prov = Provisioner(api, self.say)
            accounts = prov.run(lines, a.lines_per_device)
        finally:
            api.close()
        d["provisioning"] = {k: round(v, 1) for k, v in prov.timings.items()}
        self.say(f"  provisioning took {prov.timings}")
        time.sleep(2.0)
        self.sample("provisioned", f"{lines:,} lines")
        registrants, callee = accounts[:a.bindings], accounts[a.bindings]
        self.say(f"registering {len(registrants):,} lines at {a.register_rate}/s")
        d["register"] = self.register(registrants)
        d["bindings_listed"] = d["register"].get("listed_after_run", 0)
        self.sample("registered_listed", f"{d['bindings_listed']:,} bindings listed")
        if a.dialogs:
            self.say(f"holding {a.dialogs:,} dialogs ({a.call_rate}/s, {a.hold:.0f} s each)")
            d["calls"] = self.dialogs(registrants[:a.dialogs], callee)
        return d


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bindings", type=int, default=100_000, help="lines to register (default 100,000)")
    p.add_argument("--dialogs", type=int, default=10_000,
                   help="calls to hold, from the first lines (default 10,000; 0 skips)")
    p.add_argument("--register-rate", type=int, default=1_000,
                   help="REGISTER exchanges per second (default 1,000: with 100,000 lines the "
                        "gateway answers late above ~2,000/s on a shared machine, and SIPp aborts "
                        "an exchange on a late 401 retransmission)")
    p.add_argument("--call-rate", type=int, default=500, help="calls per second")
    p.add_argument("--hold", type=float, default=120.0, help="seconds each call is held")
    p.add_argument("--lines-per-device", type=int, default=PROFILE_LINES,
                   help=f"lines per {PROFILE} (1-{PROFILE_LINES}; fewer = more activation calls)")
    p.add_argument("--voiplab", type=Path, default=ROOT / ".venv" / "bin" / "voiplab")
    p.add_argument("--voiplab-env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--doc", type=Path, help="write the table into this Markdown file's memory block")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="no run: print (and with --doc write) the table of a saved result")
    args = p.parse_args(argv)
    if args.bindings < 1 or args.dialogs < 0 or args.dialogs > args.bindings:
        p.error("need 1 <= bindings and 0 <= dialogs <= bindings")
    if not 1 <= args.lines_per_device <= PROFILE_LINES:
        p.error(f"--lines-per-device must be 1..{PROFILE_LINES}")
    args.voiplab_env = env_pairs(args.voiplab_env, p.error)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def say(msg: str) -> None:
        print(msg, flush=True)

    if args.render:
        saved = json.loads(args.render.read_text())
        saved["derived"] = derive(saved)
        section = render_section(saved)
        say(section)
        if args.doc:
            args.doc.write_text(update_doc_text(args.doc.read_text(), section))
            say(f"updated {args.doc}")
        return 0
    if shutil.which("sipp") is None:
        say("sipp not found: apt-get install sip-tester")
        return 2
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = started.isoformat().replace("+00:00", "")
    workdir = Path(tempfile.mkdtemp(prefix="voiplab-memory-"))
    command = ".venv/bin/python -m bench.memory" + (
        " " + shlex.join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")
    bench = MemoryBench(args, workdir, say)
    data = bench.data
    data.update({"started_utc": stamp, "command": command, "machine": machine_info(),
                 "python": f"{platform.python_implementation()} {platform.python_version()}",
                 "sipp_version": sipp.sipp_version(), "lines": args.bindings + 1,
                 "lines_per_device": args.lines_per_device, "dialogs": args.dialogs,
                 "target_mb": TARGET_MB, "settle_s": SETTLE_S,
                 "json_name": "memory-" + stamp.replace(":", "").replace("-", "") + ".json"})
    notes: list[str] = []
    error = ""
    t0 = time.monotonic()
    try:
        with sysctl.raised(SOCKET_SYSCTLS, notes) as effective:
            data["sysctl"] = effective
            for line in notes:
                say("  " + line)
            try:
                bench.run()
            except (ServerError, OSError) as exc:
                error = str(exc)
                say(f"stopped: {exc}")
                data["log_tail"] = bench.server.log_tail()
            finally:
                bench.server.stop()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"work directory kept: {workdir}")
    data["duration_s"] = round(time.monotonic() - t0, 1)
    data["samples"] = [asdict(s) for s in bench.samples]
    data["error"] = error
    data.setdefault("bindings_listed", 0)
    data.setdefault("dialogs_listed", 0)
    data.setdefault("register", {"rate": args.register_rate, "attempts": 0, "successful": 0})
    data.setdefault("calls", {"rate": args.call_rate, "hold_s": args.hold})
    data["derived"] = derive(data)
    args.results.mkdir(parents=True, exist_ok=True)
    json_path = args.results / data["json_name"]
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    section = render_section(data)
    say("\n" + section)
    say(f"\nwrote {json_path}")
    if args.doc and not error:
        args.doc.write_text(update_doc_text(args.doc.read_text() if args.doc.exists() else "# Benchmarks\n",
                                            section))
        say(f"updated {args.doc}")
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())

"""Memory of the parts, in process: the directory of N lines, and one binding.

    .venv/bin/python -m bench.memparts directory [--lines 100000] [--db PATH]
    .venv/bin/python -m bench.memparts binding [--phones 2000]

`bench.memory` measures a whole `voiplab serve`; this is the quick loop behind its figures
(issue #6), one part at a time, with tracemalloc to say where the bytes are.

- `directory`: builds (or reuses) a SQLite database of N lines on Yealink T54W (16 lines
  each, through `provisioning.bulk.import_devices`, as `bench.bulk_devices` does), then, in a
  fresh interpreter that has imported what `voiplab serve` imports, loads the directory
  snapshot once and reports the RSS step, the peak (VmHWM) and tracemalloc's live bytes per
  line with the top allocation sites. The RSS step includes what the load freed but the
  process kept, which is why the load streams its rows.
- `binding`: the unit tests' gateway harness (real `SipCore`, registrar and digest, manual
  clock) registers `--phones` lines once each, lets the transaction timers and the nonce
  lifetime pass and runs housekeeping, then reports tracemalloc's bytes per binding. The
  harness's own parsing of the responses it reads is counted too (~120 B a binding), so the
  figure is an upper bound of what the gateway keeps.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def top_sites(after: tracemalloc.Snapshot, before: tracemalloc.Snapshot, per: int, n: int = 8) -> list[str]:
    return [f"  {st.size_diff / per:7.0f} B  {st.count_diff:8,d} objects  {st.traceback[0]}"
            for st in after.compare_to(before, "lineno")[:n]]


# --- directory -----------------------------------------------------------------------------

def build_db(path: Path, lines: int) -> None:
    """N lines on T54W devices (16 each) in a fresh SQLite database."""
    from sqlmodel import Session

    from bench.bulk_devices import DOMAIN, _now, seed
    from hardware_profiles.catalog import load_catalog
    from provisioning.bulk import import_devices, parse_csv
    from provisioning.db import init_db, make_engine
    from provisioning.events import ChangeBus
    from provisioning.plans import load_plans
    from provisioning.secrets import SecretBox
    from provisioning.services.env import ServiceEnv

    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    account = seed(engine, lines)
    rows = ["name,hardware_profile,mac,lines"]
    for d, first in enumerate(range(0, lines, 16)):
        exts = ";".join(str(10_000 + k) for k in range(first, min(first + 16, lines)))
        rows.append(f"dev {d},yealink-t54w,001565{d:06x},{exts}")
    parsed, errors, extensions = parse_csv("\n".join(rows) + "\n")
    if errors:
        raise SystemExit(f"CSV errors: {errors[:3]}")
    with Session(engine, expire_on_commit=False) as s:
        env = ServiceEnv(session=s, now=_now, sip_domain=DOMAIN, catalog=load_catalog(), bus=ChangeBus(),
                         plans=load_plans(), secrets=SecretBox.generate(), actor="bench")
        import_devices(env, account, parsed, extensions=extensions, prior_errors=errors)
    with engine.connect() as conn:  # leave no WAL behind: the measuring process opens the file alone
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def measure_directory(db: Path) -> None:
    """Run in a fresh interpreter (see `directory`)."""
    import gateway.serve  # noqa: F401  what `voiplab serve` imports
    import provisioning.api  # noqa: F401
    from provisioning.db import make_engine
    from provisioning.directory import Directory

    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:  # the connection and SQLite's cache are not the directory's
        conn.exec_driver_sql("SELECT count(*) FROM line")
    gc.collect()
    rss0, hwm0 = rss_mib(), rss_mib("VmHWM")
    t0 = time.perf_counter()
    directory = Directory(engine)
    snap = directory.load_all()
    took = time.perf_counter() - t0
    gc.collect()
    rss1, hwm1 = rss_mib(), rss_mib("VmHWM")
    n = len(snap.lines)
    print(f"lines {n:,}; load {took:.2f} s; RSS {rss0:.1f} -> {rss1:.1f} MiB (+{rss1 - rss0:.1f}, "
          f"{(rss1 - rss0) * 2**20 / n:,.0f} B/line); peak {hwm0:.1f} -> {hwm1:.1f} MiB")
    # the same load again, traced (tracemalloc's own bookkeeping inflates RSS, so apart)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    again = Directory(engine).load_all()
    gc.collect()
    after = tracemalloc.take_snapshot()
    live, peak = tracemalloc.get_traced_memory()
    print(f"traced: {live / n:,.0f} B/line live, peak {peak / n:,.0f} B/line (second load, first still held)")
    print("\n".join(top_sites(after, before, n)))
    del again


def directory(args: argparse.Namespace) -> int:
    db = args.db
    if db is None:
        db = Path(tempfile.mkdtemp()) / f"lines-{args.lines}.db"
    if not db.exists():
        t0 = time.perf_counter()
        build_db(db, args.lines)
        print(f"built {db} ({args.lines:,} lines) in {time.perf_counter() - t0:.0f} s", flush=True)
    return subprocess.call([sys.executable, "-m", "bench.memparts", "_measure-directory", str(db)], cwd=ROOT)


# --- binding -------------------------------------------------------------------------------

def binding(args: argparse.Namespace) -> int:
    from tests.gwharness import Gateway, register

    gw = Gateway(Path(tempfile.mkdtemp()))
    phones = [gw.phone(str(10_000 + i)) for i in range(args.phones)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for phone in phones:
        final = register(gw, phone, expires=3600)
        if final.status != 200:
            raise SystemExit(f"REGISTER answered {final.status}")
    gw.take()
    nonce_lifetime = 300.0
    gw.clock.advance(40)  # Timer J (32 s) of the authenticated REGISTERs
    gw.clock.advance(nonce_lifetime + gw.core.limits.housekeeping_real_seconds)  # nonces expire, swept
    gc.collect()
    after = tracemalloc.take_snapshot()
    n = gw.location.count()
    held = sum(st.size_diff for st in after.compare_to(before, "filename"))
    print(f"bindings {n:,}; traced {held / n:,.0f} B per binding; replay-guard entries left "
          f"{len(gw.auth.nonces):,}")
    print("\n".join(top_sites(after, before, n)))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_measure-directory"]:
        measure_directory(Path(argv[1]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="part", required=True)
    d = sub.add_parser("directory", help="RSS and bytes per line of the directory snapshot")
    d.add_argument("--lines", type=int, default=100_000)
    d.add_argument("--db", type=Path, help="reuse (or build here) this SQLite database")
    b = sub.add_parser("binding", help="bytes per registered binding")
    b.add_argument("--phones", type=int, default=2000)
    args = p.parse_args(argv)
    return directory(args) if args.part == "directory" else binding(args)


if __name__ == "__main__":
    sys.exit(main())

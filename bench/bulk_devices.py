"""Benchmark: bulk import of 10,000 devices on SQLite (issue #3: ≤ 10 s).

    .venv/bin/python -m bench.bulk_devices [--devices 10000] [--via function|api] [--doc docs/benchmarks.md]

What is timed: parsing the CSV, checking every row against its hardware
profile, writing devices, lines (HA1 + sealed password each) and one audit
event per device in one transaction, and the directory snapshot taking the
batch in (the registrar can authenticate every new line when the clock
stops). `--via api` times the same batch through `POST
/accounts/{id}/devices:bulk` on a real uvicorn (JSON both ways included).
Not timed: creating the database and the account's users beforehand.

The device mix is a small office roll-out: 70 % Yealink T54W, 10 % Poly VVX
450, 10 % Grandstream HT802 (a voice port and a fax port) and 10 % desktop
softphones, so 11,000 lines for 10,000 devices.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert
from sqlmodel import Session

from hardware_profiles.catalog import load_catalog
from provisioning.api import ProvisioningContext, create_app
from provisioning.bulk import import_devices, parse_csv
from provisioning.db import init_db, make_engine
from provisioning.directory import Directory
from provisioning.events import ChangeBus
from provisioning.models import Account, User
from provisioning.plans import load_plans
from provisioning.schemas import DeviceCreate
from provisioning.secrets import SecretBox
from provisioning.services.env import ServiceEnv

BUDGET_S = 10.0
DOMAIN = "bench.voiplab.test"
BEGIN, END = "<!-- bulk-devices:begin -->", "<!-- bulk-devices:end -->"
MIX = (("yealink-t54w", "001565", 1, 70), ("poly-vvx450", "0004f2", 1, 10),
       ("grandstream-ht802", "000b82", 2, 10), ("softphone-desktop", None, 1, 10))


def _now() -> datetime:
    return datetime.now(UTC)


def _pick(slot: int) -> tuple[str, str | None, int]:
    """The model of the device in percentile `slot` (0-99) of the mix."""
    bound = 0
    for profile, oui, lines, share in MIX:
        bound += share
        if slot < bound:
            return profile, oui, lines
    raise ValueError(slot)


def make_csv(devices: int) -> tuple[str, int]:
    """The CSV and how many lines (users) it needs; MACs unique by construction."""
    out = ["name,hardware_profile,mac,lines"]
    ext = 10_000
    for i in range(devices):
        profile, oui, lines = _pick(i % 100)
        mac = f"{oui}{i:06x}" if oui else ""
        specs = [str(ext + k) for k in range(lines)]
        if profile == "grandstream-ht802":
            specs[1] += ":fax"
        ext += lines
        out.append(f"dev {i},{profile},{mac},{';'.join(specs)}")
    return "\n".join(out) + "\n", ext - 10_000


def seed(engine: Any, users: int) -> int:
    with Session(engine) as s:
        account = Account(name="bench", plan="connect", region="US", created_at=_now())
        s.add(account)
        s.commit()
        assert account.id is not None
        now = _now()
        s.execute(insert(User), [{"account_id": account.id, "named_user_id": f"pat.bench.{i}@bench.example",
                                  "display_name": f"Pat {i}", "extension": str(10_000 + i), "kind": "person",
                                  "created_at": now} for i in range(users)])
        s.commit()
        return account.id


def run_function(engine: Any, account: int, text: str) -> dict[str, float]:
    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe(directory.apply)
    t0 = time.perf_counter()
    rows, errors, exts = parse_csv(text)
    t_parse = time.perf_counter()
    with Session(engine, expire_on_commit=False) as s:
        env = ServiceEnv(session=s, now=_now, sip_domain=DOMAIN, catalog=load_catalog(), bus=bus,
                         plans=load_plans(), secrets=SecretBox.generate(), actor="bench")
        result = import_devices(env, account, rows, extensions=exts, prior_errors=errors)
    t_end = time.perf_counter()
    assert not result.errors and len(result.created) == len(rows), result.errors[:3]
    assert len(directory.snapshot.lines) == sum(len(c.lines) for c in result.created)
    return {"parse_s": t_parse - t0, "import_s": t_end - t_parse, "total_s": t_end - t0}


def run_api(engine: Any, account: int, text: str) -> dict[str, float]:
    from tests.conftest_db import ApiServer  # the test harness's uvicorn-in-a-thread

    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe(directory.apply)
    token = secrets.token_urlsafe(16)
    ctx = ProvisioningContext(engine=engine, api_token=token, sip_domain=DOMAIN, now=_now, bus=bus)
    rows, errors, exts = parse_csv(text)
    assert not errors
    by_ext = {str(10_000 + i): i + 1 for i in range(sum(len(e) for e in exts))}  # user ids follow extensions
    payload = []
    for row, ext in zip(rows, exts, strict=True):
        assert isinstance(row, DeviceCreate)
        data = row.model_dump(exclude_none=True)
        data["lines"] = [{**ln, "user_id": by_ext[x]} for ln, x in zip(data["lines"], ext, strict=True)]
        payload.append(data)
    with ApiServer(create_app(ctx)) as server, httpx.Client(base_url=server.base_url, timeout=600,
                                                          headers={"Authorization": f"Bearer {token}"}) as http:
        t0 = time.perf_counter()
        r = http.post(f"/api/v1/accounts/{account}/devices:bulk", json={"devices": payload})
        t_end = time.perf_counter()
    assert r.status_code == 201, r.text[:500]
    return {"total_s": t_end - t0}


def update_doc(path: Path, data: dict[str, Any]) -> None:
    rows = "\n".join(f"| {r['via']} | {r['devices']:,} | {r['lines']:,} | {r['total_s']:.2f} s | "
                     f"{r['devices'] / r['total_s']:,.0f} | {'pass' if r['total_s'] <= BUDGET_S else 'FAIL'} |"
                     for r in data["runs"])
    section = f"""{BEGIN}
## Bulk device import (issue #3)

`.venv/bin/python -m bench.bulk_devices --via function --via api --doc docs/benchmarks.md`
(`bench/bulk_devices.py`). Budget: 10,000 devices in ≤ {BUDGET_S:.0f} s on SQLite. Timed: CSV parse,
per-row checks against the hardware profiles, one transaction writing devices, lines (HA1 +
sealed password) and one audit event per device, and the directory snapshot taking the batch
in. `api` adds JSON both ways over a real uvicorn on 127.0.0.1. Not timed: creating the
database and the users. Mix: 70 % Yealink T54W, 10 % Poly VVX 450, 10 % Grandstream HT802
(voice + fax port), 10 % softphones.

| via | devices | lines | time | devices/s | budget |
|---|---|---|---|---|---|
{rows}

Machine: {data['machine']}; {data['at']}.
{END}"""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--via", action="append", choices=("function", "api"))
    p.add_argument("--doc", type=Path, help="write the result table into this Markdown file")
    args = p.parse_args(argv)
    vias = args.via or ["function"]
    text, users = make_csv(args.devices)
    runs = []
    for via in vias:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            init_db(engine)
            account = seed(engine, users)
            timing = run_function(engine, account, text) if via == "function" else run_api(engine, account, text)
            engine.dispose()
        runs.append({"via": via, "devices": args.devices, "lines": users, **timing})
        print(json.dumps(runs[-1]), flush=True)
    data = {"runs": runs, "at": _now().strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                       f"Python {platform.python_version()}, SQLite (WAL)"}
    if args.doc:
        update_doc(args.doc, data)
    return 0 if all(r["total_s"] <= BUDGET_S for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""`voiplab provision …`: provisioning from the command line (a typer sub-app).

`voiplab provision import devices.csv --account 7` imports a CSV of devices
(format: `provisioning.bulk`) with a progress bar and a per-row error report.
Two ways to reach the data:
- `--api http://127.0.0.1:8080 --token …` posts the batch to a running
  gateway's `POST /api/v1/accounts/{id}/devices:bulk`, so its directory (and
  so its registrar) sees the devices at once. Use this while `voiplab serve` runs.
- otherwise it writes straight into `--db` (offline seeding; a gateway already
  running on that database sees the devices after a restart).
Exit status: 0 all rows imported, 1 some or all refused, 2 unusable input.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import Session

from hardware_profiles.catalog import load_catalog
from provisioning.bulk import (
    BulkInvalid,
    BulkResult,
    CreatedDevice,
    RowError,
    import_devices,
    parse_csv,
)
from provisioning.db import init_db, make_engine, utc_now
from provisioning.errors import Issue, NotFound
from provisioning.plans import load_plans
from provisioning.secrets import SecretBox
from provisioning.services.env import ServiceEnv

provision_app = typer.Typer(help="Provisioning tools: bulk import of devices.", no_args_is_help=True,
                            add_completion=False)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


@provision_app.command("import")
def import_csv(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV file of devices")],
    account: Annotated[int, typer.Option(help="Account id the devices belong to")],
    partial: Annotated[bool, typer.Option("--partial", help="Create the good rows even if some are bad "
                                                          "(default: all or nothing)")] = False,
    report: Annotated[Path | None, typer.Option(help="Write the per-row error report to this CSV")] = None,
    credentials: Annotated[Path | None, typer.Option(help="Write the SIP credentials (shown once) to this CSV")] = None,
    api: Annotated[str | None, typer.Option(help="Base URL of a running voiplab API, e.g. http://127.0.0.1:8080")] = None,
    token: Annotated[str | None, typer.Option(envvar="VOIPLAB_API_TOKEN", help="API bearer token (with --api)")] = None,
    db: Annotated[str, typer.Option(envvar="VOIPLAB_DB", help="Database URL (without --api)")] = "sqlite:///data/voiplab.db",
    domain: Annotated[str, typer.Option(envvar="VOIPLAB_DOMAIN", help="SIP domain = digest realm (without --api)")] = "voiplab.test",
    secret_key: Annotated[Path, typer.Option(help="Key file sealing SIP passwords for phone configs "
                                                  "(without --api)")] = Path("data/secret.key"),
) -> None:
    """Import devices from CSV (columns: name, hardware_profile, mac, serial, lines, transport,
    codecs, ua_policy; lines = extensions of existing users, e.g. "1001;1002:fax@2")."""
    console = Console(stderr=True)
    rows, errors, extensions = parse_csv(path.read_text(encoding="utf-8-sig"))
    if not rows and errors:
        _show_errors(console, errors, report)
        raise typer.Exit(2)
    with _progress(console) as bar:
        if api:
            result = _via_api(api, token, account, rows, errors, extensions, partial, bar)
        else:
            result = _via_db(db, domain, secret_key, account, rows, errors, extensions, partial, bar)
    if result is None:
        raise typer.Exit(1)
    if credentials is not None:
        _write_credentials(credentials, result.created)
    if result.errors:
        _show_errors(console, result.errors, report)
    console.print(f"[bold]{len(result.created)}[/] device(s) created, "
                  f"{len({e.row for e in result.errors})} row(s) refused.")
    raise typer.Exit(1 if result.errors else 0)


def _via_db(db: str, domain: str, secret_key: Path, account: int, rows: list[Any], errors: list[RowError],
            extensions: list[list[str]], partial: bool, bar: Progress) -> BulkResult | None:
    engine = make_engine(db)
    init_db(engine)
    tasks: dict[str, Any] = {}

    def progress(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done)

    try:
        with Session(engine, expire_on_commit=False) as session:
            env = ServiceEnv(session=session, now=utc_now, sip_domain=domain, catalog=load_catalog(),
                             plans=load_plans(), secrets=SecretBox.from_file(secret_key), actor="cli")
            return import_devices(env, account, rows, extensions=extensions, all_or_nothing=not partial,
                                  prior_errors=errors, progress=progress)
    except BulkInvalid as exc:
        return BulkResult(errors=exc.errors)
    except NotFound as exc:
        Console(stderr=True).print(f"[red]{exc.message}[/]")
        return None
    finally:
        engine.dispose()


def _via_api(api: str, token: str | None, account: int, rows: list[Any], errors: list[RowError],
             extensions: list[list[str]], partial: bool, bar: Progress) -> BulkResult | None:
    console = Console(stderr=True)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=api.rstrip("/"), headers=headers, timeout=600) as http:
        by_ext = _all_users(http, account)
        if by_ext is None:
            return None
        task = bar.add_task("prepared", total=len(rows))
        payload, index = [], []
        errors = list(errors)
        for i, row in enumerate(rows):
            bar.update(task, completed=i + 1)
            if row is None or any(e.row == i for e in errors):
                continue
            missing = [x for x in extensions[i] if x not in by_ext]
            if missing:
                errors.append(RowError(i, Issue(("lines",), "user.account",
                                                f"no user with extension {missing[0]} in account {account}")))
                continue
            data = row.model_dump(exclude_none=True)
            data["lines"] = [{**ln, "user_id": by_ext[x]} for ln, x in zip(data["lines"], extensions[i], strict=True)]
            payload.append(data)
            index.append(i)
        if errors and not partial:
            return BulkResult(errors=errors)
        if not payload:
            return BulkResult(errors=errors)
        upload = bar.add_task("uploaded", total=1)
        r = http.post(f"/api/v1/accounts/{account}/devices:bulk",
                      json={"devices": payload, "all_or_nothing": not partial})
        bar.update(upload, completed=1)
    if r.status_code == 422:
        for d in r.json()["detail"]:
            loc = d.get("loc", [])
            row = index[loc[2]] if len(loc) > 2 and isinstance(loc[2], int) else 0
            errors.append(RowError(row, Issue(tuple(loc[3:]), d.get("rule", "format"), d.get("msg", ""),
                                              d.get("limit"))))
        return BulkResult(errors=sorted(errors, key=lambda e: e.row))
    if r.status_code != 201:
        console.print(f"[red]{r.status_code}: {r.text}[/]")
        return None
    body = r.json()
    created = [CreatedDevice(index[d["row"]], d["id"], d["mac"], d["lines"]) for d in body["devices"]]
    errors += [RowError(index[e["row"]], Issue(tuple(e["field"].split(".")), e["rule"], e["message"], e["limit"]))
               for e in body["errors"]]
    return BulkResult(created=created, errors=sorted(errors, key=lambda e: e.row))


def _all_users(http: httpx.Client, account: int) -> dict[str, int] | None:
    """Extension → user id of the account, page by page (None, reported, on an API error)."""
    by_ext: dict[str, int] = {}
    offset = 0
    while True:
        r = http.get(f"/api/v1/accounts/{account}/users", params={"limit": 1000, "offset": offset})
        if r.status_code != 200:
            Console(stderr=True).print(f"[red]{r.status_code}: {r.text}[/]")
            return None
        page = r.json()
        by_ext.update({u["extension"]: u["id"] for u in page})
        if len(page) < 1000:
            return by_ext
        offset += 1000


def _show_errors(console: Console, errors: list[RowError], report: Path | None) -> None:
    table = Table(title="Refused rows (row = data row number, header excluded, from 1)")
    for column in ("row", "field", "rule", "limit", "message"):
        table.add_column(column)
    for e in errors[:50]:
        d = e.to_dict()
        table.add_row(str(e.row + 1), d["field"], d["rule"], "" if d["limit"] is None else str(d["limit"]),
                      d["message"])
    console.print(table)
    if len(errors) > 50:
        console.print(f"… and {len(errors) - 50} more")
    if report is not None:
        with report.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["row", "field", "rule", "limit", "message"])
            for e in errors:
                d = e.to_dict()
                w.writerow([e.row + 1, d["field"], d["rule"], "" if d["limit"] is None else d["limit"],
                            d["message"]])


def _write_credentials(path: Path, created: list[CreatedDevice]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["row", "device_id", "mac", "line", "sip_username", "sip_password", "port", "purpose"])
        for c in created:
            for ln in c.lines:
                w.writerow([c.row + 1, c.device_id, c.mac or "", ln["index"], ln["sip_username"],
                            ln["sip_password"], ln["port"] or "", ln["purpose"]])



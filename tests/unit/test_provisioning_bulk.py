"""Bulk import on a real SQLite file: CSV parsing, all-or-nothing vs partial,
duplicate MACs in the batch and in the database, one directory change for the
batch, an audit event and sealed password per device, and the CLI."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer
from sqlmodel import Session, select
from typer.testing import CliRunner

from hardware_profiles.catalog import load_catalog
from provisioning import services
from provisioning.bulk import BulkInvalid, import_devices, parse_csv
from provisioning.cli import provision_app
from provisioning.credentials import ha1_digests
from provisioning.db import make_engine
from provisioning.directory import Directory
from provisioning.events import Change, ChangeBus
from provisioning.models import AuditEvent, Device, Line
from provisioning.schemas import AccountCreate, DeviceCreate, LineSpec, UserCreate
from provisioning.secrets import SecretBox
from provisioning.services import ServiceEnv
from tests.conftest_db import ManualClock, sqlite_url  # noqa: F401

DOMAIN = "bulk.voiplab.test"
HEADER = "name,hardware_profile,mac,serial,lines,transport,codecs,ua_policy\n"


@dataclass
class World:
    env: ServiceEnv
    directory: Directory
    url: str
    published: list[Change] = field(default_factory=list)

    def account_with_users(self, n: int) -> int:
        acc = services.create_account(self.env, AccountCreate(name="Bulk", plan="connect", region="US")).id
        assert acc is not None
        for i in range(n):
            services.create_user(self.env, acc, UserCreate(named_user_id=f"pat.lee.{i}.{acc}@x.example",
                                                           display_name=f"Pat {i}", extension=str(1000 + i)))
        return acc


@pytest.fixture
def w(sqlite_url: str) -> Iterator[World]:  # noqa: F811
    engine = make_engine(sqlite_url)
    bus = ChangeBus()
    directory = Directory(engine)
    directory.load_all()
    bus.subscribe(directory.apply)
    with Session(engine, expire_on_commit=False) as session:
        world = World(ServiceEnv(session=session, now=ManualClock(), sip_domain=DOMAIN, catalog=load_catalog(),
                                 bus=bus, actor="tester", secrets=SecretBox.generate()), directory, sqlite_url)
        bus.subscribe(world.published.append)
        yield world
    engine.dispose()


GOOD = (HEADER
        + "desk 1,yealink-t54w,00:15:65:00:00:01,SN1,1000;1001,,g722;pcmu,\n"
        + "fax,grandstream-ht802,00:0b:82:00:00:01,,1002:fax;1003@2,tcp,,enforce\n"
        + "laptop,softphone-desktop,,,1004,,,\n")


def test_csv_import_creates_everything_in_one_change(w: World) -> None:
    acc = w.account_with_users(5)
    rows, errors, exts = parse_csv(GOOD)
    assert errors == [] and exts == [["1000", "1001"], ["1002", "1003"], ["1004"]]
    before = len(w.published)
    result = import_devices(w.env, acc, rows, extensions=exts)
    assert [c.row for c in result.created] == [0, 1, 2] and result.errors == []
    assert [c.kind for c in w.published[before:]] == ["account.devices_imported"]
    fax = result.created[1]
    assert [(ln["port"], ln["purpose"]) for ln in fax.lines] == [(1, "fax"), (2, "voice")]
    s = w.env.session
    dev = s.get(Device, fax.device_id)
    assert dev is not None and (dev.transport, dev.ua_policy, dev.kind) == ("tcp", "enforce", "ata")
    assert s.get(Device, result.created[0].device_id).codecs == ["g722", "pcmu"]  # type: ignore[union-attr]
    snap = w.directory.snapshot
    for created in result.created:
        for ln in created.lines:
            entry = snap.lines[ln["sip_username"]]
            assert entry.device_id == created.device_id
            assert entry.ha1_md5 == ha1_digests(ln["sip_username"], DOMAIN, ln["sip_password"]).md5
            row = s.exec(select(Line).where(Line.sip_username == ln["sip_username"])).one()
            assert w.env.secrets.open(row.password_sealed) == ln["sip_password"]  # type: ignore[union-attr,arg-type]
    assert dict(snap.lines) == dict(Directory(s.get_bind()).load_all().lines)  # type: ignore[arg-type]
    audits = s.exec(select(AuditEvent).where(AuditEvent.action == "device.created")).all()
    assert len(audits) == 3 and all("sip_password" not in str(a.detail) for a in audits)


def test_all_or_nothing_reports_every_row_and_writes_nothing(w: World) -> None:
    acc = w.account_with_users(3)
    services.create_device(w.env, acc, DeviceCreate(hardware_profile="yealink-t54w", name="x",
                                                    mac="001565000009", lines=[LineSpec(user_id=1)]))
    text = (HEADER
            + "ok,yealink-t54w,00:15:65:00:00:01,,1000,,,\n"
            + "taken,yealink-t54w,00:15:65:00:00:09,,1001,,,\n"          # MAC in the database
            + "twin,yealink-t54w,00:15:65:00:00:01,,1002,,,\n"           # MAC twice in the batch
            + "nobody,yealink-t54w,00:15:65:00:00:02,,4242,,,\n"         # no such extension
            + "fxo,grandstream-ht813,00:0b:82:00:00:03,,1000@2,,,\n"     # FXO carries no user line
            + "bad mac,yealink-t54w,zz,,1000,,,\n"                       # format error
            + "badport,grandstream-ht802,00:0b:82:00:00:04,,1000@x,,,\n")
    rows, errors, exts = parse_csv(text)
    devices_before = len(w.env.session.exec(select(Device)).all())
    with pytest.raises(BulkInvalid) as err:
        import_devices(w.env, acc, rows, extensions=exts, prior_errors=errors)
    found = {(e.row, e.issue.rule) for e in err.value.errors}
    assert {(1, "mac.unique"), (2, "mac.unique"), (3, "user.account"), (4, "port.fxo_no_user_line"),
            (5, "format"), (6, "csv.lines")} <= found
    assert 0 not in {e.row for e in err.value.errors}
    assert len(w.env.session.exec(select(Device)).all()) == devices_before

    result = import_devices(w.env, acc, rows, extensions=exts, prior_errors=errors, all_or_nothing=False)
    assert [c.row for c in result.created] == [0] and {e.row for e in result.errors} == {1, 2, 3, 4, 5, 6}


def test_csv_header_problems() -> None:
    assert parse_csv("name,colour\nx,red\n")[1][0].issue.rule == "csv.header"
    assert parse_csv("mac\n001565000001\n")[1][0].issue.rule == "csv.header"


def _cli(args: list[str]) -> tuple[int, str]:
    app = typer.Typer()
    app.add_typer(provision_app, name="provision")
    result = CliRunner().invoke(app, ["provision", *args])
    return result.exit_code, result.output


def test_cli_imports_into_the_database(w: World, tmp_path: Path) -> None:
    acc = w.account_with_users(5)
    csv_path, report, creds = tmp_path / "devices.csv", tmp_path / "report.csv", tmp_path / "creds.csv"
    key = tmp_path / "secret.key"
    common = ["--account", str(acc), "--db", w.url, "--domain", DOMAIN, "--secret-key", str(key)]
    csv_path.write_text(GOOD.replace("1004", "9999"))  # last row: unknown extension
    code, out = _cli(["import", str(csv_path), *common, "--report", str(report)])
    assert code == 1 and "0 device(s) created" in out
    assert next(iter(csv.DictReader(report.open())))["rule"] == "user.account"
    code, out = _cli(["import", str(csv_path), *common, "--partial", "--credentials", str(creds)])
    assert code == 1 and "2 device(s) created, 1 row(s) refused" in out
    lines = list(csv.DictReader(creds.open()))
    assert len(lines) == 4 and oct(creds.stat().st_mode & 0o777) == "0o600"
    row = w.env.session.exec(select(Line).where(Line.sip_username == lines[0]["sip_username"])).one()
    assert SecretBox.from_file(key).open(row.password_sealed) == lines[0]["sip_password"]  # type: ignore[arg-type]
    csv_path.write_text(HEADER + "laptop,softphone-desktop,,,1004,,,\n")
    assert _cli(["import", str(csv_path), *common])[0] == 0
    csv_path.write_text("bogus\n")
    assert _cli(["import", str(csv_path), *common])[0] == 2
    assert _cli(["import", str(csv_path), "--account", "999", "--db", w.url])[0] in (1, 2)

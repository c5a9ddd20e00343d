"""POST /accounts/{id}/devices:bulk and `voiplab provision import --api` over HTTP,
against SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from provisioning.cli import provision_app
from tests import conftest_db
from tests.conftest_db import Api

db_url, prov = conftest_db.db_url, conftest_db.prov


def yealink_mac() -> str:
    return "001565" + secrets.token_hex(3)


def test_bulk_all_or_nothing_and_partial(prov: Api) -> None:
    acc = prov.account()["id"]
    users = [prov.user(acc, str(3000 + i))["id"] for i in range(4)]
    good = [{"hardware_profile": "yealink-t54w", "name": f"d{i}", "mac": yealink_mac(),
             "lines": [{"user_id": users[i]}]} for i in range(3)]
    bad = {"hardware_profile": "grandstream-ht802", "name": "x", "mac": yealink_mac(),
           "lines": [{"user_id": users[3]}, {"user_id": 999999}]}
    r = prov.post(f"/accounts/{acc}/devices:bulk", {"devices": [*good, bad]})
    assert r.status_code == 422
    locs = {(tuple(d["loc"]), d["rule"]) for d in r.json()["detail"]}
    assert (("body", "devices", 3, "mac"), "mac.oui_vendor") in locs
    assert (("body", "devices", 3, "lines", 1, "user_id"), "user.account") in locs
    assert prov.get(f"/accounts/{acc}/devices").json() == []

    r = prov.post(f"/accounts/{acc}/devices:bulk", {"devices": [*good, bad], "all_or_nothing": False})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] == 3 and {e["row"] for e in body["errors"]} == {3}
    first = body["devices"][0]
    assert first["lines"][0]["sip_password"] and first["lines"][0]["sip_username"].startswith("3000-")
    assert prov.directory.snapshot.lines[first["lines"][0]["sip_username"]].device_id == first["id"]
    assert len(prov.get(f"/accounts/{acc}/devices").json()) == 3
    assert "sip_password" not in prov.get("/audit", account_id=acc).text
    assert prov.post("/accounts/999999/devices:bulk", {"devices": good}).status_code == 404
    assert prov.post(f"/accounts/{acc}/devices:bulk", {"devices": []}).status_code == 422


def test_cli_import_through_the_running_api(prov: Api, tmp_path: Path) -> None:
    acc = prov.account()["id"]
    for i in range(3):
        prov.user(acc, str(4000 + i))
    csv_path = tmp_path / "devices.csv"
    macs = [yealink_mac() for _ in range(2)]
    csv_path.write_text("name,hardware_profile,mac,lines\n"
                        f"a,yealink-t54w,{macs[0]},4000;4001\n"
                        f"b,yealink-t54w,{macs[1]},4002\n")
    app = typer.Typer()
    app.add_typer(provision_app, name="provision")
    token = prov.http.headers["Authorization"].split()[1]
    args: list[Any] = ["provision", "import", str(csv_path), "--account", str(acc), "--api",
                       str(prov.http.base_url), "--token", token]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 device(s) created" in result.output
    devices = prov.get(f"/accounts/{acc}/devices").json()
    assert sorted(d["mac"] for d in devices) == sorted(macs)
    # the running gateway's directory saw them at once
    names = {ln["sip_username"] for d in devices for ln in d["lines"]}
    assert names <= set(prov.directory.snapshot.lines)
    csv_path.write_text(f"name,hardware_profile,mac,lines\nc,yealink-t54w,{macs[0]},4000\n")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "mac.unique" in result.output

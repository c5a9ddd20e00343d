"""Devices over HTTP against SQLite and PostgreSQL: machine-readable 422s,
warnings, PATCH re-validation, lifecycle actions with the audit log, named-user
rules, line reassignment (R2) and licences (R4)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests import conftest_db
from tests.conftest_db import SIP_DOMAIN, Api, loc, random_mac

db_url, prov = conftest_db.db_url, conftest_db.prov


def gs_mac() -> str:
    return "00:0B:82" + random_mac()[8:]


def test_422_lists_every_problem_with_field_rule_and_limit(prov: Api) -> None:
    acc = prov.account()["id"]
    users = [prov.user(acc, str(100 + i))["id"] for i in range(3)]
    r = prov.post(f"/accounts/{acc}/devices", {
        "hardware_profile": "grandstream-ht802", "name": "fax", "mac": random_mac(),  # a Yealink OUI
        "codecs": ["pcmu", "g722"],
        "lines": [{"user_id": users[0], "port": 3, "purpose": "fax"}, {"user_id": users[1]},
                  {"user_id": users[2]}]})
    assert r.status_code == 422
    found = {(d["field"], d["rule"]): d for d in r.json()["detail"]}
    assert set(found) == {("mac", "mac.oui_vendor"), ("lines", "lines.max"), ("lines.0.port", "port.fxs"),
                          ("codecs.1", "codecs.supported")}
    assert found[("lines", "lines.max")]["limit"] == 2
    assert found[("lines", "lines.max")]["loc"] == ["body", "lines"]
    assert found[("lines.0.port", "port.fxs")]["loc"] == ["body", "lines", 0, "port"]
    assert "g722" not in found[("codecs.1", "codecs.supported")]["limit"]
    assert prov.get(f"/accounts/{acc}/devices").json() == []


def test_fxo_port_fax_and_warnings(prov: Api) -> None:
    acc = prov.account()["id"]
    u1, u2 = prov.user(acc, "200")["id"], prov.user(acc, "201")["id"]
    r = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "grandstream-ht813", "name": "gw",
                                              "mac": gs_mac(), "lines": [{"user_id": u1, "port": 2}]})
    assert r.json()["detail"][0]["rule"] == "port.fxo_no_user_line"
    r = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "cisco-spa112", "name": "fax room",
                                              "mac": "00:02:FD:FF:21:03",
                                              "lines": [{"user_id": u1}, {"user_id": u2, "purpose": "fax"}]})
    assert r.status_code == 201, r.text
    dev = r.json()
    assert [(ln["port"], ln["purpose"]) for ln in dev["lines"]] == [(1, "voice"), (2, "fax")]
    assert [(w["field"], w["rule"]) for w in dev["warnings"]] == [("mac", "mac.oui_unknown")]
    assert dev["transport"] == "udp" and dev["ua_policy"] == "flag"
    audit = prov.get("/audit", entity="device", entity_id=dev["id"]).json()
    assert audit[0]["detail"]["warnings"][0]["rule"] == "mac.oui_unknown"


def test_patch_revalidates_against_the_new_profile(prov: Api) -> None:
    acc = prov.account()["id"]
    users = [prov.user(acc, str(300 + i))["id"] for i in range(3)]
    dev = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "yealink-t54w", "name": "desk",
                                                "mac": random_mac(),
                                                "lines": [{"user_id": u} for u in users]}).json()
    r = prov.http.patch(f"/api/v1/devices/{dev['id']}", json={"hardware_profile": "yealink-cp920"})
    assert r.status_code == 422 and r.json()["detail"][0]["rule"] == "lines.max"
    assert r.json()["detail"][0]["limit"] == 1
    r = prov.http.patch(f"/api/v1/devices/{dev['id']}", json={"codecs": ["opus", "PCMU"], "name": "front"})
    assert r.status_code == 200, r.text
    assert r.json()["codecs"] == ["opus", "pcmu"] and r.json()["name"] == "front"
    r = prov.http.patch(f"/api/v1/devices/{dev['id']}", json={"codecs": ["speex"]})
    assert r.json()["detail"][0]["field"] == "codecs.0"
    r = prov.http.patch(f"/api/v1/devices/{dev['id']}", json={"name": None})
    assert ["body", "name"] in loc(r)
    assert prov.get(f"/devices/{dev['id']}").json()["name"] == "front"
    updated = [e for e in prov.get("/audit", entity="device", entity_id=dev["id"]).json()
               if e["action"] == "device.updated"]
    assert updated[0]["detail"]["before"] == {"codecs": [], "name": "desk"}


def test_lifecycle_actions_and_the_audit_log(prov: Api) -> None:
    acc = prov.account()["id"]
    dev = prov.softphone(acc, [prov.user(acc, "400")["id"]])
    place = prov.location(acc)
    prov.post(f"/devices/{dev['id']}/location", {"location_id": place["id"]})
    prov.post(f"/devices/{dev['id']}/activate")
    name = dev["lines"][0]["sip_username"]
    assert prov.post(f"/devices/{dev['id']}/suspend").json()["state"] == "suspended"
    assert prov.directory.snapshot.lines[name].device_state == "suspended"
    assert prov.post(f"/devices/{dev['id']}/activate").status_code == 409
    assert prov.post(f"/devices/{dev['id']}/resume").json()["state"] == "active"
    retired = prov.post(f"/devices/{dev['id']}/retire").json()
    assert retired["state"] == "retired" and retired["retired_at"] is not None
    assert prov.post(f"/devices/{dev['id']}/resume").status_code == 409
    assert prov.http.patch(f"/api/v1/devices/{dev['id']}", json={"name": "x"}).status_code == 409
    actions = [e["action"] for e in reversed(prov.get("/audit", entity="device", entity_id=dev["id"]).json())]
    assert actions == ["device.created", "device.located", "device.activated", "e911_notice.sent",
                       "device.suspended", "device.resumed", "device.retired"]
    assert dev["lines"][0]["sip_password"] not in prov.get("/audit", account_id=acc).text


@pytest.mark.parametrize(("named", "kind", "rule"), [
    ("user1@acme.example", "person", "R1"), ("trainer@acme.example", "person", "R1"),
    ("room@acme.example", "room", "R7"), ("meeting-room-3@acme.example", "room", "R7")])
def test_generic_named_ids_are_422_naming_the_rule(prov: Api, named: str, kind: str, rule: str) -> None:
    acc = prov.account()["id"]
    r = prov.post(f"/accounts/{acc}/users", {"named_user_id": named, "display_name": "X",
                                            "extension": "500", "kind": kind})
    assert ["body", "named_user_id"] in loc(r)
    assert r.json()["detail"][0]["rule"] == rule and rule in r.json()["detail"][0]["msg"]


def test_reassigning_a_line_returns_new_credentials_once(prov: Api) -> None:
    acc = prov.account()["id"]
    ann, bob = prov.user(acc, "600")["id"], prov.user(acc, "601")["id"]
    dev = prov.softphone(acc, [ann])
    line = dev["lines"][0]
    r = prov.post(f"/lines/{line['id']}/reassign", {"user_id": bob})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["user_id"] == bob and moved["sip_username"] != line["sip_username"]
    assert moved["credential_generation"] == 2
    entry = prov.directory.snapshot.lines[moved["sip_username"]]
    a1 = f"{moved['sip_username']}:{SIP_DOMAIN}:{moved['sip_password']}".encode()
    assert entry.ha1_md5 == hashlib.md5(a1).hexdigest()
    assert line["sip_username"] not in prov.directory.snapshot.lines
    assert "sip_password" not in prov.get(f"/devices/{dev['id']}").text
    audit = next(e for e in prov.get("/audit", account_id=acc).json() if e["action"] == "line.reassigned")
    assert audit["detail"]["rule_id"] == "R2" and moved["sip_password"] not in json.dumps(audit)
    rotated = prov.post(f"/lines/{line['id']}/rotate-password").json()
    assert rotated["credential_generation"] == 3 and rotated["sip_password"] != moved["sip_password"]


def test_licences_over_http(prov: Api) -> None:
    acc = prov.account()["id"]
    ann, bob, cat = (prov.user(acc, str(700 + i))["id"] for i in range(3))
    ann_dev = prov.softphone(acc, [ann])
    r = prov.post(f"/accounts/{acc}/licences", {"kind": "concurrent", "name": "night desk",
                                               "user_ids": [ann, bob]})
    assert r.status_code == 201, r.text
    licence: dict[str, Any] = r.json()
    entry = prov.directory.snapshot.lines[ann_dev["lines"][0]["sip_username"]]
    assert (entry.licence_id, entry.licence_kind) == (licence["id"], "concurrent")
    assert prov.get(f"/licences/{licence['id']}").json()["user_ids"] == [ann, bob]
    dup = prov.post(f"/accounts/{acc}/licences", {"kind": "named", "name": "x", "user_ids": [bob]})
    assert dup.status_code == 409
    r = prov.http.put(f"/api/v1/licences/{licence['id']}/users", json={"user_ids": [bob, cat]})
    assert r.status_code == 200
    assert r.json()["user_ids"] == [bob, cat] and r.json()["revoked_line_ids"] == [ann_dev["lines"][0]["id"]]
    assert prov.get(f"/accounts/{acc}/licences").json()[0]["user_ids"] == [bob, cat]
    bad = prov.post(f"/accounts/{acc}/licences", {"kind": "named", "name": "x", "user_ids": [999999]})
    assert bad.json()["detail"][0]["rule"] == "user.account"
    assert prov.get("/licences/999999").status_code == 404


def test_hardware_profiles_show_ports_files_and_provenance(prov: Api) -> None:
    profiles = {p["id"]: p for p in prov.get("/hardware-profiles").json()}
    assert len(profiles) >= 19
    ht813 = prov.get("/hardware-profiles/grandstream-ht813").json()
    assert (ht813["fxs_ports"], ht813["fxo_ports"], ht813["t38"], ht813["kind"]) == (1, 1, True, "ata")
    assert ht813["files_device"] == ["cfg{mac}.xml"] and ht813["provenance"]["fxo_ports"].startswith("verified:")
    rally = profiles["logitech-rally-bar"]
    assert rally["kind"] == "room_kit_component" and rally["room_kit_roles"] == ["audio", "camera", "computer"]
    assert profiles["yealink-t54w"]["ua_pattern"].startswith("^[Yy]ealink SIP-T54W")

"""Provisioning API over real HTTP (uvicorn on 127.0.0.1) against SQLite and PostgreSQL.

One server and database per backend per module; every test makes its own
account (and unique named users / MACs), so tests do not depend on each other.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from provisioning.cdrs import CdrStore
from provisioning.directory import Directory
from provisioning.models import AuditEvent, Line
from tests import conftest_db
from tests.conftest_db import SIP_DOMAIN, Api, loc, random_mac

# Fixtures used here: one API server per backend (SQLite, PostgreSQL) for this module.
db_url, prov = conftest_db.db_url, conftest_db.prov

# --- public endpoints and auth -------------------------------------------------------------

def test_healthz_openapi_and_docs_need_no_token(prov: Api) -> None:
    assert prov.anon.get("/healthz").json() == {"status": "ok"}
    spec = prov.anon.get("/openapi.json").json()
    assert "/api/v1/accounts/{account_id}/devices" in spec["paths"]
    assert "/api/v1/devices/{device_id}/activate" in spec["paths"]
    assert prov.anon.get("/docs").status_code == 200


PROTECTED = [
    ("GET", "/api/v1/accounts"), ("POST", "/api/v1/accounts"), ("GET", "/api/v1/accounts/1"),
    ("POST", "/api/v1/accounts/1/users"), ("GET", "/api/v1/accounts/1/users"),
    ("POST", "/api/v1/accounts/1/locations"), ("POST", "/api/v1/accounts/1/devices"),
    ("GET", "/api/v1/devices/1"), ("POST", "/api/v1/devices/1/location"),
    ("POST", "/api/v1/devices/1/activate"), ("GET", "/api/v1/registrations"),
    ("GET", "/api/v1/calls"), ("GET", "/api/v1/cdrs"), ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/hardware-profiles"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_api_v1_refuses_missing_or_wrong_token(prov: Api, method: str, path: str) -> None:
    before = len(prov.changes)
    r = prov.anon.request(method, path, json={})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = prov.anon.request(method, path, json={}, headers={"Authorization": "Bearer not-the-token"})
    assert r.status_code == 401
    r = prov.anon.request(method, path, json={}, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401
    assert len(prov.changes) == before


# --- accounts ------------------------------------------------------------------------------

def test_create_get_and_list_accounts(prov: Api) -> None:
    created = prov.account(region="ca")
    assert created["plan"] == "connect" and created["region"] == "CA" and created["status"] == "active"
    assert created["created_at"] == prov.clock().isoformat().replace("+00:00", "Z")
    assert prov.get(f"/accounts/{created['id']}").json() == created
    listed = prov.get("/accounts", limit=1000).json()
    assert created in listed


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "plan": "pro", "region": "US"}, "plan"),
    ({"name": "x", "plan": "connect", "region": "MARS"}, "region"),
    ({"plan": "connect", "region": "US"}, "name"),
    ({"name": "", "plan": "connect", "region": "US"}, "name"),
    ({"name": "x", "plan": "connect", "region": "US", "colour": "red"}, "colour"),
])
def test_account_validation_names_the_field(prov: Api, body: dict[str, Any], field: str) -> None:
    assert ["body", field] in loc(prov.post("/accounts", body))


def test_unknown_ids_are_404(prov: Api) -> None:
    for path in ("/accounts/999999", "/users/999999", "/locations/999999", "/devices/999999",
                 "/accounts/999999/users", "/accounts/999999/devices", "/hardware-profiles/nope"):
        r = prov.get(path)
        assert r.status_code == 404, path
        assert "not found" in r.json()["detail"]
    assert prov.post("/devices/999999/activate").status_code == 404
    assert prov.post("/devices/999999/location", {"location_id": 1}).status_code == 404
    assert prov.post("/accounts/999999/users", {"named_user_id": "a.b@c.de", "display_name": "A",
                                               "extension": "100"}).status_code == 404


# --- users ---------------------------------------------------------------------------------

def test_users_extension_unique_per_account_and_named_id_platform_wide(prov: Api) -> None:
    acc, other = prov.account()["id"], prov.account()["id"]
    jane = prov.user(acc, "1001", named_user_id="Jane.Roe@Example.com")
    assert jane["named_user_id"] == "jane.roe@example.com"
    assert prov.get(f"/users/{jane['id']}").json() == jane

    dup_ext = prov.post(f"/accounts/{acc}/users", {"named_user_id": "john.roe@example.com",
                                                  "display_name": "John", "extension": "1001"})
    assert dup_ext.status_code == 409
    assert "extension" in dup_ext.json()["detail"]

    assert prov.user(other, "1001")["extension"] == "1001"  # same extension, other account

    dup_named = prov.post(f"/accounts/{other}/users", {"named_user_id": "jane.roe@example.com",
                                                      "display_name": "Jane", "extension": "1002"})
    assert dup_named.status_code == 409
    assert "named_user_id" in dup_named.json()["detail"]
    assert [u["id"] for u in prov.get(f"/accounts/{acc}/users").json()] == [jane["id"]]


@pytest.mark.parametrize(("body", "field"), [
    ({"named_user_id": "not-an-email", "display_name": "A", "extension": "1001"}, "named_user_id"),
    ({"named_user_id": "a.b@c.de", "display_name": "A", "extension": "1x"}, "extension"),
    ({"named_user_id": "a.b@c.de", "display_name": "A", "extension": "1"}, "extension"),
    ({"named_user_id": "a.b@c.de", "extension": "1001"}, "display_name"),
])
def test_user_validation_names_the_field(prov: Api, body: dict[str, Any], field: str) -> None:
    acc = prov.account()["id"]
    assert ["body", field] in loc(prov.post(f"/accounts/{acc}/users", body))


# --- locations -----------------------------------------------------------------------------

def test_location_stores_civic_fields_and_callback(prov: Api) -> None:
    acc = prov.account()["id"]
    created = prov.location(acc, name="HQ", country="us", unit="B", callback_number="+1 (512) 555-0199")
    assert created["country"] == "US" and created["unit"] == "B" and created["rd"] == "Congress"
    assert created["callback_number"] == "+15125550199"
    assert prov.get(f"/locations/{created['id']}").json() == created
    assert prov.get(f"/accounts/{acc}/locations").json() == [created]


@pytest.mark.parametrize(("body", "field"), [
    ({"callback_number": "+15125550100"}, "country"),
    ({"country": "USA", "callback_number": "+15125550100"}, "country"),
    ({"country": "US"}, "callback_number"),
    ({"country": "US", "callback_number": "call me"}, "callback_number"),
    ({"country": "US", "callback_number": "+15125550100", "street": "Main"}, "street"),
])
def test_location_validation_names_the_field(prov: Api, body: dict[str, Any], field: str) -> None:
    acc = prov.account()["id"]
    assert ["body", field] in loc(prov.post(f"/accounts/{acc}/locations", body))


# --- devices, credentials, lifecycle --------------------------------------------------------

def test_device_creation_returns_password_once_and_stores_only_ha1(prov: Api) -> None:
    acc = prov.account()["id"]
    u1, u2 = prov.user(acc, "2001"), prov.user(acc, "2002")
    r = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "yealink-t54w", "name": "front desk",
                                              "mac": random_mac(), "lines": [{"user_id": u1["id"]},
                                                                             {"user_id": u2["id"]}]})
    assert r.status_code == 201, r.text
    dev = r.json()
    assert dev["state"] == "new" and dev["kind"] == "desk_phone" and len(dev["mac"]) == 12
    lines = dev["lines"]
    assert [ln["index"] for ln in lines] == [1, 2]
    assert [ln["user_id"] for ln in lines] == [u1["id"], u2["id"]]
    assert lines[0]["sip_username"].startswith("2001-") and lines[1]["sip_username"].startswith("2002-")
    assert all(ln["sip_domain"] == SIP_DOMAIN for ln in lines)
    passwords = [ln["sip_password"] for ln in lines]
    assert len(set(passwords)) == 2 and all(len(p) >= 20 for p in passwords)

    with Session(prov.engine) as s:
        for ln, pw in zip(lines, passwords, strict=True):
            row = s.exec(select(Line).where(Line.id == ln["id"])).one()
            a1 = f"{ln['sip_username']}:{SIP_DOMAIN}:{pw}".encode()
            assert row.ha1_md5 == hashlib.md5(a1).hexdigest()
            assert row.ha1_sha256 == hashlib.sha256(a1).hexdigest()
            assert pw not in json.dumps(row.model_dump(mode="json"))

    shown = [prov.get(f"/devices/{dev['id']}").text, prov.get(f"/accounts/{acc}/devices").text,
             prov.get("/audit", account_id=acc).text]
    for body in shown:
        assert "sip_password" not in body
        assert not any(pw in body for pw in passwords)
    assert prov.get(f"/devices/{dev['id']}").json()["lines"] == [
        {k: v for k, v in ln.items() if k != "sip_password"} for ln in lines]


@pytest.mark.parametrize(("profile", "mac", "field"), [
    ("yealink-t54w", None, "mac"),              # desk phone needs a MAC
    ("softphone-mobile", "001565000001", "mac"),  # softphone has none
    ("yealink-t54w", "00:15:65:zz:00:01", "mac"),
    ("no-such-phone", None, "hardware_profile"),
])
def test_device_profile_rules_name_the_field(prov: Api, profile: str, mac: str | None, field: str) -> None:
    acc = prov.account()["id"]
    u = prov.user(acc, "3001")
    body: dict[str, Any] = {"hardware_profile": profile, "name": "d", "lines": [{"user_id": u["id"]}]}
    if mac is not None:
        body["mac"] = mac
    assert ["body", field] in loc(prov.post(f"/accounts/{acc}/devices", body))


def test_device_lines_must_fit_profile_and_belong_to_account(prov: Api) -> None:
    acc, other = prov.account()["id"], prov.account()["id"]
    u1, u2 = prov.user(acc, "4001"), prov.user(acc, "4002")
    stranger = prov.user(other, "4001")
    two = {"hardware_profile": "softphone-desktop", "name": "d",
           "lines": [{"user_id": u1["id"]}, {"user_id": u2["id"]}]}
    assert ["body", "lines"] in loc(prov.post(f"/accounts/{acc}/devices", two))
    foreign = {"hardware_profile": "softphone-desktop", "name": "d", "lines": [{"user_id": stranger["id"]}]}
    assert ["body", "lines", 0, "user_id"] in loc(prov.post(f"/accounts/{acc}/devices", foreign))
    empty = {"hardware_profile": "softphone-desktop", "name": "d", "lines": []}
    assert ["body", "lines"] in loc(prov.post(f"/accounts/{acc}/devices", empty))
    assert prov.get(f"/accounts/{acc}/devices").json() == []


def test_duplicate_mac_is_422_mac_unique_in_any_notation(prov: Api) -> None:
    acc = prov.account()["id"]
    u1, u2 = prov.user(acc, "5001"), prov.user(acc, "5002")
    mac = random_mac()
    first = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "yealink-t54w", "name": "a",
                                                  "mac": mac, "lines": [{"user_id": u1["id"]}]})
    assert first.status_code == 201
    r = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "yealink-t54w", "name": "b",
                                              "mac": mac.replace(":", "-").lower(),
                                              "lines": [{"user_id": u2["id"]}]})
    assert ["body", "mac"] in loc(r)
    assert r.json()["detail"][0]["rule"] == "mac.unique" and "MAC" in r.json()["detail"][0]["msg"]


def test_activation_needs_a_location_r12(prov: Api) -> None:
    acc = prov.account()["id"]
    u = prov.user(acc, "6001")
    dev = prov.softphone(acc, [u["id"]])
    r = prov.post(f"/devices/{dev['id']}/activate")
    assert r.status_code == 409
    assert r.json()["rule_id"] == "R12"
    assert "R12" in r.json()["detail"] and "location" in r.json()["detail"]
    assert prov.get(f"/devices/{dev['id']}").json()["state"] == "new"

    elsewhere = prov.location(prov.account()["id"])
    assert ["body", "location_id"] in loc(prov.post(f"/devices/{dev['id']}/location",
                                                   {"location_id": elsewhere["id"]}))
    assert ["body", "location_id"] in loc(prov.post(f"/devices/{dev['id']}/location", {}))

    here = prov.location(acc)
    prov.clock.advance(60)
    located = prov.post(f"/devices/{dev['id']}/location", {"location_id": here["id"]})
    assert located.status_code == 200
    assert located.json()["state"] == "located" and located.json()["location_id"] == here["id"]
    prov.clock.advance(60)
    active = prov.post(f"/devices/{dev['id']}/activate").json()
    assert active["state"] == "active"
    assert active["activated_at"] == prov.clock().isoformat().replace("+00:00", "Z")
    again = prov.post(f"/devices/{dev['id']}/activate")
    assert again.status_code == 200 and again.json()["activated_at"] == active["activated_at"]

    moved_to = prov.location(acc, flr="4")  # R13: an active device may move and stays active
    moved = prov.post(f"/devices/{dev['id']}/location", {"location_id": moved_to["id"]}).json()
    assert moved["state"] == "active" and moved["location_id"] == moved_to["id"]


def test_every_change_is_audited_with_secrets_redacted(prov: Api) -> None:
    acc = prov.account()["id"]
    u = prov.user(acc, "7001")
    place = prov.location(acc)
    dev = prov.softphone(acc, [u["id"]])
    prov.post(f"/devices/{dev['id']}/location", {"location_id": place["id"]})
    prov.post(f"/devices/{dev['id']}/activate")
    events = prov.get("/audit", account_id=acc).json()
    assert [e["action"] for e in reversed(events)] == [
        "account.created", "user.created", "location.created", "device.created",
        "device.located", "device.activated", "e911_notice.sent"]  # R15 notice on activation
    assert all(e["actor"] == "api" for e in events)
    created = next(e for e in events if e["action"] == "device.created")
    assert created["entity_id"] == dev["id"]
    assert created["detail"]["lines"][0]["sip_username"] == dev["lines"][0]["sip_username"]
    with Session(prov.engine) as s:
        stored = s.exec(select(AuditEvent).where(AuditEvent.account_id == acc)).all()
    assert len(stored) == 7
    assert dev["lines"][0]["sip_password"] not in json.dumps([e.detail for e in stored])
    only_device = prov.get("/audit", entity="device", entity_id=dev["id"]).json()
    assert {e["action"] for e in only_device} == {"device.created", "device.located", "device.activated",
                                                  "e911_notice.sent"}


# --- directory snapshot follows changes without reload ------------------------------------

def test_directory_snapshot_follows_each_change(prov: Api) -> None:
    acc = prov.account()
    assert prov.directory.snapshot.accounts[acc["id"]].plan == "connect"
    u = prov.user(acc["id"], "8001", display_name="Snap Shot")
    snap = prov.directory.snapshot
    assert snap.user_by_extension[(acc["id"], "8001")] == u["id"]
    assert snap.extension_lines(acc["id"], "8001") == ()  # known user, no line yet

    dev = prov.softphone(acc["id"], [u["id"]])
    name = dev["lines"][0]["sip_username"]
    entry = prov.directory.snapshot.line(name)
    assert entry is not None and entry.device_state == "new" and entry.location_id is None
    assert entry.display_name == "Snap Shot" and entry.realm == SIP_DOMAIN
    pw = dev["lines"][0]["sip_password"]
    assert entry.ha1_md5 == hashlib.md5(f"{name}:{SIP_DOMAIN}:{pw}".encode()).hexdigest()

    place = prov.location(acc["id"])
    prov.post(f"/devices/{dev['id']}/location", {"location_id": place["id"]})
    entry = prov.directory.snapshot.line(name)
    assert entry is not None and entry.device_state == "located" and entry.location_id == place["id"]

    prov.post(f"/devices/{dev['id']}/activate")
    snap = prov.directory.snapshot
    assert snap.lines[name].device_state == "active"
    assert snap.extension_lines(acc["id"], "8001") == (snap.lines[name],)
    assert snap.by_device[dev["id"]] == (snap.lines[name],)

    fresh = Directory(prov.engine).load_all()  # the incremental result equals a full reload
    for attr in ("accounts", "users", "user_by_extension", "user_counts", "lines", "lines_by_id",
                 "by_user", "by_device"):
        assert dict(getattr(snap, attr)) == dict(getattr(fresh, attr)), attr
    kinds = [c.kind for c in prov.changes if c.account_id == acc["id"]]
    assert kinds == ["account.created", "user.created", "device.created", "location.created",
                     "device.located", "device.activated"]


def test_concurrent_device_creation(prov: Api) -> None:
    acc = prov.account()["id"]
    users = [prov.user(acc, str(9100 + i)) for i in range(8)]
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def create(uid: int) -> None:
        r = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "softphone-mobile", "name": "m",
                                                  "lines": [{"user_id": uid}]})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=create, args=(u["id"],)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [201] * 8
    names = {r.json()["lines"][0]["sip_username"] for r in results}
    assert len(names) == 8
    assert names <= set(prov.directory.snapshot.lines)


# --- live views and call records -----------------------------------------------------------

def test_registrations_and_calls_come_from_the_live_view(prov: Api) -> None:
    prov.live.regs[:] = [{"aor": "a", "account_id": 1}, {"aor": "b", "account_id": 2}]
    prov.live.active_calls[:] = [{"call_id": "c1", "account_id": 2}]
    assert prov.get("/registrations").json() == prov.live.regs
    assert prov.get("/registrations", account_id=2).json() == [{"aor": "b", "account_id": 2}]
    assert prov.get("/calls").json() == prov.live.active_calls
    assert prov.get("/calls", account_id=1).json() == []


def test_cdrs_written_in_batches_and_filtered_by_account(prov: Api) -> None:
    acc, other = prov.account()["id"], prov.account()["id"]
    t0 = prov.clock()
    store = CdrStore(prov.engine)
    records = [
        {"account_id": acc, "call_id": f"ans-{acc}", "caller": "sip:1001@x", "callee": "sip:1002@x",
         "start": t0, "answer": t0 + timedelta(seconds=2), "end": t0 + timedelta(seconds=12),
         "duration_s": 10.0, "disposition": "answered", "sip_code": 200, "gateway_node": "gw1"},
        {"account_id": acc, "call_id": f"busy-{acc}", "caller": "sip:1001@x", "callee": "sip:1003@x",
         "start": t0 + timedelta(seconds=30), "end": t0 + timedelta(seconds=31),
         "disposition": "busy", "sip_code": 486, "reason": "Busy Here"},
        {"account_id": other, "call_id": f"rej-{other}", "caller": "sip:2001@x", "callee": "911",
         "start": t0, "end": t0, "disposition": "rejected", "sip_code": 403,
         "reason": "Device not activated: emergency location required (R12)", "rule_id": "R12"},
    ]
    assert store.write_many(records) == 3
    mine = prov.get("/cdrs", account_id=acc).json()
    assert [c["call_id"] for c in mine] == [f"busy-{acc}", f"ans-{acc}"]  # newest first
    answered = mine[1]
    assert answered["duration_s"] == 10.0 and answered["sip_code"] == 200
    assert answered["answer"] == (t0 + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    theirs = prov.get("/cdrs", account_id=other).json()
    assert len(theirs) == 1 and theirs[0]["rule_id"] == "R12"
    assert [c["call_id"] for c in prov.get("/cdrs", account_id=acc, disposition="busy").json()] == [
        f"busy-{acc}"]
    assert prov.get("/cdrs", call_id=f"ans-{acc}").json()[0]["account_id"] == acc
    assert ["query", "disposition"] in loc(prov.get("/cdrs", disposition="maybe"))
    assert ["query", "limit"] in loc(prov.get("/cdrs", limit=0))


def test_hardware_profiles_listed(prov: Api) -> None:
    ids = [p["id"] for p in prov.get("/hardware-profiles").json()]
    assert {"softphone-desktop", "softphone-mobile", "yealink-t54w"} <= set(ids)
    t54w = prov.get("/hardware-profiles/yealink-t54w").json()
    assert t54w["max_lines"] == 16 and t54w["mac_policy"] == "required"

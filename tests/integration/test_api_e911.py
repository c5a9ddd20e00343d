"""The E911 API over HTTP on SQLite and PostgreSQL: validated locations (422 per element, dry
runs, PATCH), R15 notices and their acknowledgement, R11 outages and suspension, account E911
settings, R13 prompts fed by the gateway's store, emergency call / PSAP / Kari's Law records, the
audit trail, and the directory snapshot following each change."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from e911.moves import fingerprint
from provisioning.e911_store import E911Store
from provisioning.events import ChangeBus
from provisioning.notifier import Notifier
from tests.conftest_db import Api, db_url, loc, prov, random_mac  # noqa: F401

TEXAS = {"country": "US", "a1": "TX", "a3": "Austin", "rd": "Congress", "sts": "Ave", "hno": "100",
         "pc": "78701", "callback_number": "+15125550100"}


def located_device(prov: Api, acc: int, ext: str, place: int, *, activate: bool = True,  # noqa: F811
                   desk: bool = False) -> dict[str, Any]:
    user = prov.user(acc, ext)
    if desk:
        r = prov.post(f"/accounts/{acc}/devices", {"hardware_profile": "yealink-t54w", "name": "desk",
                                                   "mac": random_mac(), "lines": [{"user_id": user["id"]}]})
        assert r.status_code == 201, r.text
        dev: dict[str, Any] = r.json()
    else:
        dev = prov.softphone(acc, [user["id"]])
    assert prov.post(f"/devices/{dev['id']}/location", {"location_id": place}).status_code == 200
    if activate:
        assert prov.post(f"/devices/{dev['id']}/activate").status_code == 200
    return dev


def gateway_store(prov: Api) -> E911Store:  # noqa: F811
    """The store as the gateway's writer thread uses it, its changes folded into the directory."""
    bus = ChangeBus()
    bus.subscribe(prov.directory.apply)
    return E911Store(prov.engine, bus=bus)


# --- locations ----------------------------------------------------------------------------------

def test_a_bad_address_is_refused_naming_every_failing_element(prov: Api) -> None:  # noqa: F811
    acc = prov.account()["id"]
    r = prov.post(f"/accounts/{acc}/locations", {"country": "US", "a1": "Texas", "rd": "Congress", "hno": "1-3",
                                                 "pc": "787", "callback_number": "555-0100",
                                                 "site_needs": {"floor": True}})
    assert r.status_code == 422
    detail = r.json()["detail"]
    got = {(tuple(d["loc"]), d["element"], d["problem"]) for d in detail}
    assert got == {(("body", "a3"), "A3", "required"), (("body", "hno"), "HNO", "not_numeric"),
                   (("body", "pc"), "PC", "invalid_format"), (("body", "flr"), "FLR", "required_for_dispatch"),
                   (("body", "callback_number"), "callback_number", "invalid_number")}
    assert all(d["type"] == "value_error" and d["msg"] == d["message"] and d["field"] == d["loc"][-1]
               for d in detail)
    assert prov.get(f"/accounts/{acc}/locations").json() == []
    assert ["body", "site_needs", "lift"] in loc(prov.post(f"/accounts/{acc}/locations",
                                                           {**TEXAS, "site_needs": {"lift": True}}))
    assert ["body", "country"] in loc(prov.post(f"/accounts/{acc}/locations", {**TEXAS, "country": "Texas"}))


def test_location_is_stored_normalised_and_listed(prov: Api) -> None:  # noqa: F811
    acc = prov.account()["id"]
    created = prov.location(acc, a1="texas", sts="Avenue", pc="78701 1234", callback_number="512.555.0199",
                            site_needs={"floor": True, "room": True})
    assert (created["a1"], created["sts"], created["pc"], created["callback_number"]) == (
        "TX", "AVE", "78701-1234", "+15125550199")
    assert created["validation_status"] == "valid" and created["validation_problems"] == []
    assert created["site_needs"] == {"building": False, "floor": True, "unit": False, "room": True}
    assert prov.get(f"/locations/{created['id']}").json() == created
    assert prov.get(f"/accounts/{acc}/locations").json() == [created]
    entry = prov.directory.snapshot.locations[created["id"]]
    assert entry.civic["pc"] == "78701-1234" and entry.callback_number == "+15125550199" and entry.valid


def test_dry_runs_and_patch(prov: Api) -> None:  # noqa: F811
    acc = prov.account()["id"]
    dry = prov.post(f"/accounts/{acc}/locations:validate", {**TEXAS, "pc": "7870"})
    assert dry.status_code == 200
    body = dry.json()
    assert body["valid"] is False and [(p["loc"], p["problem"]) for p in body["problems"]] == [
        (["body", "pc"], "invalid_format")]
    assert body["civic"]["sts"] == "AVE" and body["callback_number"] == "+15125550100"
    assert prov.get(f"/accounts/{acc}/locations").json() == []  # nothing stored

    place = prov.location(acc)
    pid = place["id"]
    dev = located_device(prov, acc, "3001", pid)
    check = prov.post(f"/locations/{pid}/validate").json()
    assert check["valid"] is True and check["formatted"].startswith("100 Congress AVE")
    what_if = prov.post(f"/locations/{pid}/validate", {"unit": None, "site_needs": {"unit": True}}).json()
    assert [p["problem"] for p in what_if["problems"]] == ["required_for_dispatch"]

    prov.clock.advance(60)
    refused = prov.http.patch(f"/api/v1/locations/{pid}", json={"a3": None, "callback_number": "123"})
    assert {tuple(d["loc"]) for d in refused.json()["detail"]} == {("body", "a3"), ("body", "callback_number")}
    assert ["body", "country"] in loc(prov.http.patch(f"/api/v1/locations/{pid}", json={"country": None}))
    assert prov.get(f"/locations/{pid}").json() == place
    changed = prov.http.patch(f"/api/v1/locations/{pid}", json={"flr": "7", "room": "702", "name": "7th floor"})
    assert changed.status_code == 200
    out = changed.json()
    assert (out["flr"], out["room"], out["name"], out["id"]) == ("7", "702", "7th floor", pid)
    assert out["updated_at"] == prov.clock().isoformat().replace("+00:00", "Z")
    assert prov.get(f"/devices/{dev['id']}").json()["location_id"] == pid  # still bound
    assert prov.directory.snapshot.locations[pid].civic["flr"] == "7"
    kinds = [c.kind for c in prov.changes if c.account_id == acc][-2:]
    assert kinds == ["location.updated", "device.location_changed"]
    [audit] = prov.get("/audit", entity="location", entity_id=pid, limit=1).json()
    assert audit["action"] == "location.updated" and audit["detail"]["changes"]["flr"]["after"] == "7"
    assert prov.http.patch("/api/v1/locations/999999", json={"flr": "1"}).status_code == 404


# --- R15 ------------------------------------------------------------------------------------------

def test_activation_notice_and_acknowledgement_switch_forwarding_on(prov: Api) -> None:  # noqa: F811
    acc = prov.account()["id"]
    place = prov.location(acc)
    new = located_device(prov, acc, "3101", place["id"], activate=False)
    r = prov.post(f"/devices/{new['id']}/e911-notice:acknowledge")
    assert r.status_code == 409 and r.json()["rule_id"] == "R15"
    assert prov.get(f"/devices/{new['id']}/e911-notices").json() == []

    prov.post(f"/devices/{new['id']}/activate")
    [notice] = prov.get(f"/devices/{new['id']}/e911-notices").json()
    assert notice["acknowledged_at"] is None and "R11" in notice["text"] and "+15125550100" in notice["text"]
    status = prov.get(f"/devices/{new['id']}/e911").json()
    assert status["location_forwarding"] is False and "not acknowledged" in status["forwarding_reason"]
    assert [n["id"] for n in prov.get(f"/accounts/{acc}/e911-notices", pending=True).json()] == [notice["id"]]

    prov.clock.advance(5)
    acked = prov.post(f"/devices/{new['id']}/e911-notice:acknowledge", {"acknowledged_by": "Office manager"})
    assert acked.status_code == 200
    assert acked.json()["acknowledged_by"] == "Office manager"
    assert prov.get(f"/accounts/{acc}/e911-notices", pending=True).json() == []
    status = prov.get(f"/devices/{new['id']}/e911").json()
    assert status["location_forwarding"] is True and status["notice"]["id"] == notice["id"]
    assert prov.directory.snapshot.devices[new["id"]].location_forwarding is True
    actions = [e["action"] for e in prov.get("/audit", entity="device", entity_id=new["id"]).json()]
    assert actions[:3] == ["e911_notice.acknowledged", "e911_notice.sent", "device.activated"]
    assert prov.post("/devices/999999/e911-notice:acknowledge").status_code == 404
    assert ["body", "extra"] in loc(prov.post(f"/devices/{new['id']}/e911-notice:acknowledge", {"extra": 1}))


# --- R11 ------------------------------------------------------------------------------------------

def test_outages_start_end_and_list(prov: Api) -> None:  # noqa: F811
    acc = prov.account()["id"]
    place = prov.location(acc)
    pid = place["id"]
    dev = located_device(prov, acc, "3201", pid)
    r = prov.post(f"/locations/{pid}/outages", {"kind": "power", "note": "storm"})
    assert r.status_code == 201
    power = r.json()
    assert (power["kind"], power["active"], power["location_id"], power["account_id"]) == ("power", True, pid, acc)
    again = prov.post(f"/locations/{pid}/outages", {"kind": "power"})
    assert again.status_code == 409 and again.json()["rule_id"] == "R11" and again.json()["outage_id"] == power["id"]
    assert ["body", "kind"] in loc(prov.post(f"/locations/{pid}/outages", {"kind": "flood"}))
    assert prov.post("/locations/999999/outages", {"kind": "power"}).status_code == 404
    blocked = prov.post(f"/locations/{pid}/outages", {"kind": "network_blocked"}).json()
    assert prov.directory.snapshot.locations[pid].outages == ("power", "network_blocked")
    assert prov.get(f"/devices/{dev['id']}/e911").json()["outages"] == ["power", "network_blocked"]

    prov.clock.advance(600)
    ended = prov.post(f"/outages/{power['id']}:end")
    assert ended.status_code == 200 and ended.json()["active"] is False
    assert ended.json()["ended_at"] == prov.clock().isoformat().replace("+00:00", "Z")
    assert prov.post(f"/outages/{power['id']}:end").status_code == 409
    assert prov.post("/outages/999999:end").status_code == 404
    assert prov.directory.snapshot.locations[pid].outage == "network_blocked"
    assert [o["id"] for o in prov.get(f"/locations/{pid}/outages", active=True).json()] == [blocked["id"]]
    assert [o["id"] for o in prov.get("/outages", account_id=acc).json()] == [power["id"], blocked["id"]]
    assert [o["id"] for o in prov.get("/outages", account_id=acc, active=False).json()] == [power["id"]]


def test_account_e911_settings_and_suspension(prov: Api) -> None:  # noqa: F811
    acc = prov.account()
    aid = acc["id"]
    assert (acc["stale_policy"], acc["notification_url"], acc["status"]) == ("use_last", None, "active")
    r = prov.http.patch(f"/api/v1/accounts/{aid}", json={"stale_policy": "national_centre",
                                                         "notification_url": "http://127.0.0.1:8999/911"})
    assert r.status_code == 200
    assert (r.json()["stale_policy"], r.json()["notification_url"]) == ("national_centre", "http://127.0.0.1:8999/911")
    entry = prov.directory.snapshot.accounts[aid]
    assert (entry.stale_policy, entry.notification_url) == ("national_centre", "http://127.0.0.1:8999/911")
    assert ["body", "stale_policy"] in loc(prov.http.patch(f"/api/v1/accounts/{aid}", json={"stale_policy": "x"}))
    assert ["body", "notification_url"] in loc(prov.http.patch(f"/api/v1/accounts/{aid}",
                                                               json={"notification_url": "ftp://h/x"}))
    cleared = prov.http.patch(f"/api/v1/accounts/{aid}", json={"notification_url": None})
    assert cleared.json()["notification_url"] is None and cleared.json()["stale_policy"] == "national_centre"

    assert prov.post(f"/accounts/{aid}/suspend").json()["status"] == "suspended"
    assert prov.directory.snapshot.accounts[aid].status == "suspended"
    assert prov.post(f"/accounts/{aid}/resume").json()["status"] == "active"
    assert prov.post("/accounts/999999/suspend").status_code == 404
    actions = [e["action"] for e in prov.get("/audit", entity="account", entity_id=aid).json()]
    assert actions[:2] == ["account.resumed", "account.suspended"]


# --- R13 ------------------------------------------------------------------------------------------

def test_moves_from_the_gateway_store_prompt_and_the_api_resolves_them(prov: Api) -> None:  # noqa: F811
    acc = prov.account()["id"]
    home, away = prov.location(acc), prov.location(acc, a3="Round Rock", pc="78664")
    soft = located_device(prov, acc, "3301", home["id"])
    desk = located_device(prov, acc, "3302", home["id"], desk=True)
    store = gateway_store(prov)

    def register(device: int, host: str) -> Any:
        at = prov.clock.advance(1)
        return store.record_registrations([{"device_id": device, "fingerprint": fingerprint(host, host).as_dict(),
                                            "at": at}])[0]

    register(soft["id"], "10.0.0.5")
    register(desk["id"], "10.0.0.6")
    moved = register(soft["id"], "192.168.44.5")
    register(desk["id"], "172.20.1.6")
    [prompt] = prov.get(f"/devices/{soft['id']}/location-prompts").json()
    assert prompt["id"] == moved.prompt_id and prompt["status"] == "open" and "R13" in prompt["reason"]
    assert prompt["fingerprint"] == {"subnet": "192.168.44.0/24", "contact_host": "192.168.44.5"}
    assert prov.get(f"/devices/{desk['id']}/location-prompts").json() == []  # fixed: flagged, not prompted
    desk_state = prov.get(f"/devices/{desk['id']}/e911").json()
    assert desk_state["location_stale"] is True and desk_state["nomadic"] is False
    assert "172.20.1.0/24" in desk_state["stale_reason"]

    ok = prov.post(f"/devices/{soft['id']}/location-prompts/{prompt['id']}:confirm")
    assert ok.status_code == 200 and ok.json()["status"] == "confirmed"
    assert prov.post(f"/devices/{soft['id']}/location-prompts/{prompt['id']}:confirm").status_code == 409
    assert prov.post(f"/devices/{desk['id']}/location-prompts/{prompt['id']}:confirm").status_code == 404
    assert prov.get(f"/devices/{soft['id']}/e911").json()["location_stale"] is False
    assert prov.get(f"/devices/{soft['id']}/location-prompts", status="open").json() == []

    rebound = prov.post(f"/devices/{desk['id']}/location", {"location_id": away["id"]})
    assert rebound.status_code == 200
    state = prov.get(f"/devices/{desk['id']}/e911").json()
    assert state["location_stale"] is False and state["location_id"] == away["id"]
    assert state["last_fingerprint"] is None  # the next REGISTER sets a fresh baseline
    entry = prov.directory.snapshot.devices[desk["id"]]
    assert not entry.location_stale and entry.location_id == away["id"]
    assert prov.directory.snapshot.devices_by_location[away["id"]] == (desk["id"],)
    located = prov.get("/audit", entity="device", entity_id=desk["id"], limit=1).json()[0]
    assert located["action"] == "device.located" and located["detail"]["stale_cleared"] is True


# --- what the gateway recorded ---------------------------------------------------------------------

@pytest.fixture
def webhook() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/karis", received
    server.shutdown()
    server.server_close()


def test_emergency_calls_psap_records_and_notifications_are_listed(
        prov: Api, webhook: tuple[str, list[bytes]]) -> None:  # noqa: F811
    acc = prov.account()["id"]
    place = prov.location(acc)
    dev = located_device(prov, acc, "3401", place["id"])
    store = gateway_store(prov)
    t0 = prov.clock()
    call_id = f"{secrets.token_hex(6)}@gw"
    pidf = "<presence entity='pres:+15125550100@lab'/>"
    store.record_emergency_calls([
        {"call_id": call_id, "account_id": acc, "device_id": dev["id"], "location_id": place["id"],
         "caller": "sip:3401@lab", "dialled": "911", "service_urn": "urn:service:sos", "route_kind": "psap",
         "code": "forwarding_on", "rule_id": "R15", "reason": "forwarded", "with_location": True,
         "callback": "+15125550100", "pidf": pidf, "started_at": t0},
        {"call_id": f"r-{call_id}", "account_id": acc, "device_id": dev["id"], "dialled": "911",
         "route_kind": "refuse", "code": "account_deactivated", "rule_id": "R11", "sip_status": 403,
         "reason": "Service suspended: emergency calling unavailable (R11)", "started_at": t0},
    ])
    store.record_psap_calls([{"id": 1, "call_id": call_id, "role": "emergency", "verdict": "pass",
                              "state": "confirmed", "status": 200, "device_id": f"urn:voiplab:device:{dev['id']}",
                              "received_at": t0.isoformat(), "pidf": pidf, "checks": []}])
    calls = prov.get("/emergency/calls", account_id=acc).json()
    assert {c["call_id"] for c in calls} == {call_id, f"r-{call_id}"}
    routed = next(c for c in calls if c["call_id"] == call_id)
    assert routed["pidf"] == pidf and routed["psap"]["verdict"] == "pass" and routed["psap"]["pidf"] == pidf
    [refused] = prov.get("/emergency/calls", account_id=acc, route="refuse").json()
    assert (refused["rule_id"], refused["sip_status"], refused["psap"]) == ("R11", 403, None)
    assert ["query", "route"] in loc(prov.get("/emergency/calls", route="elsewhere"))
    assert [p["call_id"] for p in prov.get("/emergency/psap-calls", device_id=f"urn:voiplab:device:{dev['id']}")
            .json()] == [call_id]
    audit = {e["action"]: e for e in prov.get("/audit", account_id=acc, entity="emergency_call").json()}
    assert audit["emergency_call.routed"]["detail"]["pidf"] == pidf
    assert audit["emergency_call.refused"]["detail"]["rule_id"] == "R11"

    url, received = webhook
    notifier = Notifier(prov.engine, now=prov.clock)
    try:
        notifier.submit({"call_id": call_id, "account_id": acc, "event": "emergency_call.started"}, url)
        assert notifier.drain()
    finally:
        notifier.close()
    [note] = prov.get("/emergency/notifications", account_id=acc).json()
    assert (note["status"], note["attempts"], note["last_status_code"], note["url"]) == ("sent", 1, 204, url)
    assert len(received) == 1 and prov.get("/emergency/notifications", call_id=call_id, status="failed").json() == []


def test_e911_routes_need_the_token(prov: Api) -> None:  # noqa: F811
    for method, path in (("PATCH", "/api/v1/accounts/1"), ("POST", "/api/v1/accounts/1/suspend"),
                         ("POST", "/api/v1/devices/1/e911-notice:acknowledge"), ("GET", "/api/v1/devices/1/e911"),
                         ("POST", "/api/v1/locations/1/outages"), ("GET", "/api/v1/emergency/calls"),
                         ("GET", "/api/v1/emergency/notifications"), ("PATCH", "/api/v1/locations/1"),
                         ("POST", "/api/v1/accounts/1/locations:validate")):
        assert prov.anon.request(method, path, json={}).status_code == 401, path

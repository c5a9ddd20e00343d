"""GoTo Room kits and equipment orders over HTTP on the injected clock, at the
windows' edges (R40, R41, R42), against SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from tests import conftest_db
from tests.conftest_db import Api, loc

db_url, prov = conftest_db.db_url, conftest_db.prov

MIN = 60
HOUR = 3600
DAY = 86400

RALLY = [{"model": "logitech-rally-bar", "serial": "RB-1"}, {"model": "logitech-tap-ip", "serial": "TAP-1"},
         {"model": "Installation sheet", "serial": "IS-1", "role": "installation_sheet"}]


def room(prov: Api, acc: int) -> int:
    town = "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(8))
    return prov.user(acc, str(10_000 + secrets.randbelow(10**6)),
                     named_user_id=f"boardroom.{town}@acme.example", kind="room")["id"]


def kit(prov: Api, acc: int | None = None, **kw: Any) -> dict[str, Any]:
    acc = acc or prov.account()["id"]
    body = {"name": "Boardroom", "room_user_id": room(prov, acc), "components": RALLY, "amount_usd": 2999, **kw}
    r = prov.post(f"/accounts/{acc}/room-kits", body)
    assert r.status_code == 201, r.text
    return r.json()


def delivered(prov: Api) -> dict[str, Any]:
    order = kit(prov)["order"]
    prov.post(f"/orders/{order['id']}/ship", {"tracking_number": "1Z999"})
    r = prov.post(f"/orders/{order['id']}/deliver")
    assert r.status_code == 200, r.text
    return r.json()


def test_r40_a_kit_needs_all_five_parts_and_a_room(prov: Api) -> None:
    acc = prov.account()["id"]
    made = kit(prov, acc)
    assert {tuple(c["roles"]) for c in made["components"]} == {
        ("audio", "camera", "computer"), ("input",), ("installation_sheet",)}
    assert made["state"] == "ordered" and made["order"]["state"] == "ordered"
    r = prov.post(f"/accounts/{acc}/room-kits", {"name": "x", "room_user_id": room(prov, acc),
                                                "components": RALLY[:1], "amount_usd": 10})
    bad = r.json()["detail"]
    assert r.status_code == 422 and bad[0]["rule"] == "R40" and bad[0]["limit"] == ["input", "installation_sheet"]
    keyboard = [*RALLY[:1], {"model": "Logitech MK270 keyboard + mouse", "serial": "KB-1", "role": "input"},
                RALLY[2]]
    assert prov.post(f"/accounts/{acc}/room-kits", {"name": "y", "room_user_id": room(prov, acc),
                                                   "components": keyboard, "amount_usd": 10}).status_code == 201
    person = prov.user(acc, "899")["id"]
    r = prov.post(f"/accounts/{acc}/room-kits", {"name": "z", "room_user_id": person, "components": RALLY,
                                                "amount_usd": 10})
    assert ["body", "room_user_id"] in loc(r) and r.json()["detail"][0]["rule"] == "R7"
    r = prov.post(f"/accounts/{acc}/room-kits", {"name": "z", "room_user_id": room(prov, acc),
                                                "components": [*RALLY, {"model": "yealink-t54w", "serial": "Y"}],
                                                "amount_usd": 10})
    assert r.json()["detail"][0]["field"] == "components.3.model"


def test_r40_tracking_number_late_after_7_business_days(prov: Api) -> None:
    acc = prov.account()["id"]
    on_time, late = kit(prov, acc)["order"], kit(prov, acc)["order"]
    assert on_time["tracking_late"] is False and late["tracking_late"] is False
    shipped = prov.post(f"/orders/{on_time['id']}/ship", {"tracking_number": "TRK-1"}).json()
    assert shipped["state"] == "shipped" and shipped["tracking_late"] is False
    prov.clock.advance(11 * DAY)  # 7 business days span at most 10 calendar days (from a Saturday)
    assert prov.get(f"/orders/{on_time['id']}").json()["tracking_late"] is False
    assert prov.get(f"/orders/{late['id']}").json()["tracking_late"] is True  # no number, past due
    shipped = prov.post(f"/orders/{late['id']}/ship", {"tracking_number": "TRK-LATE"}).json()
    assert shipped["tracking_late"] is True and shipped["tracking_due_at"] == late["tracking_due_at"]
    assert shipped["shipped_at"] > shipped["tracking_due_at"]
    assert [o["id"] for o in prov.get(f"/accounts/{acc}/orders", late=True).json()] == [late["id"]]
    assert [o["id"] for o in prov.get(f"/accounts/{acc}/orders", late=False).json()] == [on_time["id"]]


def test_r41_missing_parts_at_47h59_accepted_and_48h01_refused(prov: Api) -> None:
    early, late = delivered(prov), delivered(prov)
    assert early["claim_deadline"] is not None
    prov.clock.advance(47 * HOUR + 59 * MIN)
    comp = prov.get(f"/room-kits/{early['room_kit_id']}").json()["components"][1]["id"]
    ok = prov.post(f"/orders/{early['id']}/claims", {"kind": "missing_parts", "component_ids": [comp],
                                                    "description": "Tap IP missing"})
    assert ok.status_code == 201 and ok.json()["outcome"] == "accepted" and ok.json()["rule_id"] == "R41"
    order = prov.get(f"/orders/{early['id']}").json()
    assert order["state"] == "missing_parts" and len(order["claims"]) == 1
    assert prov.post(f"/orders/{early['id']}/complete").json()["state"] == "complete"
    prov.clock.advance(2 * MIN)  # 48 h 01 min after the second delivery
    r = prov.post(f"/orders/{late['id']}/claims", {"kind": "missing_parts"})
    assert r.status_code == 409 and r.json()["rule_id"] == "R41" and "48 hours" in r.json()["detail"]
    refused = [e for e in prov.get("/audit", entity="order", entity_id=late["id"]).json()
               if e["action"] == "order.claim_refused"]
    assert refused[0]["detail"]["rule_id"] == "R41"
    assert prov.get(f"/orders/{late['id']}").json()["state"] == "delivered"


def test_r41_warranty_free_within_12_months_as_is_after(prov: Api) -> None:
    order = delivered(prov)
    prov.post(f"/orders/{order['id']}/complete")
    prov.post(f"/orders/{order['id']}/install")
    assert prov.post(f"/orders/{order['id']}/activate").json()["state"] == "active"
    until = order["warranty_until"]
    purchased = prov.clock()
    twelve_months = (purchased.replace(year=purchased.year + 1) - purchased).total_seconds()
    prov.clock.advance(twelve_months - MIN)
    ok = prov.post(f"/orders/{order['id']}/claims", {"kind": "warranty", "description": "camera dead"})
    assert ok.status_code == 201 and ok.json()["outcome"] == "accepted"
    prov.clock.advance(2 * MIN)
    assert prov.clock().isoformat() > until.replace("Z", "+00:00")
    r = prov.post(f"/orders/{order['id']}/claims", {"kind": "warranty"})
    assert r.status_code == 409 and r.json()["rule_id"] == "R41" and "as is" in r.json()["detail"]
    r = prov.post(f"/orders/{order['id']}/cancel", {"written_notice": True})
    assert r.status_code == 409 and r.json()["rule_id"] == "R41"  # used kits are not returnable


def test_warranty_starts_at_the_given_purchase_date(prov: Api) -> None:
    purchased = prov.clock() - timedelta(days=400)
    made = kit(prov, purchased_at=purchased.isoformat())
    assert made["order"]["warranty_until"] < prov.clock().isoformat()


def test_r42_cancel_free_at_23h59_fee_at_24h01_refused_after_30_days(prov: Api) -> None:
    free, fee, notice, late = (kit(prov)["order"] for _ in range(4))
    prov.clock.advance(23 * HOUR + 59 * MIN)
    r = prov.post(f"/orders/{free['id']}/cancel", {})
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["restocking_fee_usd"] == 0
    assert prov.get(f"/room-kits/{free['room_kit_id']}").json()["state"] == "cancelled"
    assert prov.post(f"/orders/{free['id']}/cancel", {}).status_code == 409  # already cancelled
    prov.clock.advance(2 * MIN)
    r = prov.post(f"/orders/{notice['id']}/cancel", {})
    assert ["body", "written_notice"] in loc(r) and r.json()["detail"][0]["rule"] == "R42"
    r = prov.post(f"/orders/{fee['id']}/cancel", {"written_notice": True})
    assert r.status_code == 200 and r.json()["restocking_fee_usd"] == 750  # 25 % of 2999, rounded up
    prov.clock.advance(30 * DAY - 24 * HOUR)  # 30 days + 1 min after the order
    r = prov.post(f"/orders/{late['id']}/cancel", {"written_notice": True})
    assert r.status_code == 409 and r.json()["rule_id"] == "R42"
    assert prov.get(f"/orders/{late['id']}").json()["state"] == "ordered"


def test_order_state_table_refuses_skips(prov: Api) -> None:
    order = kit(prov)["order"]
    assert prov.post(f"/orders/{order['id']}/deliver").status_code == 409
    assert prov.post(f"/orders/{order['id']}/claims", {"kind": "warranty"}).status_code == 409
    plain = prov.post(f"/accounts/{order['account_id']}/orders", {"description": "10x T54W", "amount_usd": 1990})
    assert plain.status_code == 201 and plain.json()["room_kit_id"] is None
    r = prov.post(f"/orders/{plain.json()['id']}/ship", {"tracking_number": ""})
    assert ["body", "tracking_number"] in loc(r)
    assert prov.get("/orders/999999").status_code == 404

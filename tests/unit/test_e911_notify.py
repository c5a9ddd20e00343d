"""Kari's Law notification payload (e911/notify.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from e911.civic import CivicAddress
from e911.notify import EVENT, Caller, build_notification, notification_json
from e911.pidf import build_pidf

AT = datetime(2026, 3, 1, 9, 30, 5, 123456, tzinfo=UTC)
CALLER = Caller(display_name="Ann Lee", extension="1001", sip_username="acct1-1001",
                named_user_id="ann.lee@example.com", device_id=7, device_name="Desk 4.10")
CIVIC = CivicAddress(country="US", a1="IL", a3="Springfield", prd="E", rd="Main", sts="ST", hno="100",
                     pc="62701", bld="North Tower", flr="4", room="410")


def test_payload_carries_what_9_3_asks_for() -> None:
    pidf = build_pidf(CIVIC, entity="pres:+12175550123@gw", device_id="mac:00163e5a7c2e", timestamp=AT)
    payload = build_notification(call_id="c1@gw", account_id=3, caller=CALLER, callback="+12175550123",
                                 dialled="911", service_urn="urn:service:sos", route="psap", started_at=AT,
                                 location=CIVIC, pidf=pidf)
    assert payload["event"] == EVENT and payload["started_at"] == "2026-03-01T09:30:05Z"
    assert payload["callback_number"] == "+12175550123" and payload["callback_valid"] is True
    assert payload["location_conveyed"] == CIVIC.elements()
    assert payload["location_text"] == ("100 E Main ST, North Tower, Floor 4, Room 410, Springfield, "
                                        "IL 62701, US")
    assert payload["location_omitted_reason"] is None
    assert payload["pidf_lo"] == pidf.decode()
    assert payload["caller"]["named_user_id"] == "ann.lee@example.com"
    assert "911" in payload["summary"] and "+12175550123" in payload["summary"]
    assert "Floor 4" in payload["summary"]


def test_no_location_says_why() -> None:
    payload = build_notification(call_id="c2@gw", account_id=3, caller=CALLER, callback="2175550123",
                                 dialled="911", service_urn="urn:service:sos", route="national_centre",
                                 started_at=AT, location=None,
                                 reason="R15: customer not yet notified that the device is active",
                                 warnings=["x"])
    assert payload["location_conveyed"] is None and payload["pidf_lo"] is None
    assert payload["location_omitted_reason"].startswith("R15")
    assert payload["callback_valid"] is False and payload["warnings"] == ["x"]
    assert "location not conveyed" in payload["summary"]


def test_json_body_is_stable_and_parses_back() -> None:
    payload = build_notification(call_id="c3@gw", account_id=3, caller=CALLER, callback=None, dialled="112",
                                 service_urn="urn:service:sos", route="psap", started_at=AT, location=CIVIC)
    body = notification_json(payload)
    assert body == notification_json(dict(reversed(list(payload.items()))))
    assert json.loads(body) == payload

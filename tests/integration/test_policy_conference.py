"""The OpenVoice conference bridge behind the gateway (#5, R30), with real pjsua2 phones.

A room belongs to a named user of the account (the organizer) and has an organizer PIN. Phones
dial the room number through the gateway (`<room>` as a participant, `<room>*<pin>` as the
organizer); the live roster in the API shows who is in, and a wrong PIN is refused with 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.peers.api import VoiplabApi, wait_for
from tests.peers.gateway import GatewayProcess

pytestmark = pytest.mark.peers

REG_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
PIN = "2468"
WRONG_PIN = "1357"



def _place(phone: Any, uri: str) -> tuple[int, dict[str, Any]]:
    """pjsua2 calls `uri`: (pjsua call id, the CONFIRMED or DISCONNECTED event that settled it)."""
    seen = len(phone.events)
    cid = phone.call(uri)
    found: list[dict[str, Any]] = []

    def settled() -> bool:
        found[:] = [e for e in phone.events[seen:] if e.get("event") == "call_state" and e.get("call") == cid
                    and e.get("state") in ("CONFIRMED", "DISCONNECTED")]
        return bool(found)

    assert phone.run_until(settled, CALL_TIMEOUT), f"call to {uri} not settled"
    return cid, found[0]


def test_organizer_and_participant_dial_in_and_a_wrong_pin_is_refused(
    gateway: GatewayProcess, api: VoiplabApi, pj_phone: Any, phone_process: Callable[..., Any],
) -> None:
    account = api.create_account(plan="openvoice")
    organizer = api.provision_line(account, "201", locate=False)
    guest = api.provision_line(account, "202", locate=False)
    room = api.create_conference(account, api.named_user_id(organizer.user_id), pin=PIN)
    number = str(room["number"])
    assert room["pin"] == PIN and room["account_id"] == account, room

    host = phone_process(organizer.sip_account(gateway.sip_address), name="organizer")
    assert host.expect(REG_TIMEOUT, event="reg")["code"] == 200
    pj_phone.add_account(guest.sip_account(gateway.sip_address))
    reg = pj_phone.wait_event(REG_TIMEOUT, event="reg")
    assert reg is not None and reg["code"] == 200, reg

    guest_cid, joined = _place(pj_phone, f"sip:{number}@{guest.sip_domain}")
    assert joined["state"] == "CONFIRMED", joined
    host.send(cmd="call", uri=f"sip:{number}*{PIN}@{organizer.sip_domain}")
    host_joined = host.expect(CALL_TIMEOUT, event="call_state", state="CONFIRMED")

    roster = wait_for(lambda: api.conference_roster(number), lambda r: len(r) == 2, 5.0, "two in the room")
    roles = {p["call_id"]: p["role"] for p in roster}
    assert roles == {joined["sip_call_id"]: "participant", host_joined["sip_call_id"]: "organizer"}, roster

    _, wrong = _place(pj_phone, f"sip:{number}*{WRONG_PIN}@{guest.sip_domain}")
    assert (wrong["state"], wrong["code"]) == ("DISCONNECTED", 403), wrong
    assert len(api.conference_roster(number)) == 2, "a refused caller must not join"

    pj_phone.hangup(guest_cid)
    left = wait_for(lambda: api.conference_roster(number), lambda r: len(r) == 1, 5.0, "the guest left")
    assert left[0]["role"] == "organizer", left
    records = wait_for(lambda: api.cdrs_where(account_id=account, call_type="conference"),
                       lambda rs: len(rs) == 2, 5.0, "conference call records")
    by_call = {r["call_id"]: r for r in records}
    assert by_call[joined["sip_call_id"]]["disposition"] == "answered", records
    assert by_call[wrong["sip_call_id"]]["sip_code"] == 403, records

"""R13 moves seen by the registrar, and Kari's Law notifications, with real pjsua2 phones (#4).

- A fixed device (a desk phone profile) registers from 127.0.0.1, then again from a phone bound to
  127.0.0.2 (another Contact host; loopback only): the device is flagged `location_stale`, with
  no prompt; with the account's stale policy `national_centre`, its next 911 goes to the national
  centre without location (R13).
- A softphone that moves the same way is flagged and its user prompted (an open prompt naming
  both fingerprints); with the default policy its 911 still goes to the PSAP with the last
  registered location and a warning.
- An account with a `notification_url` pointing at an HTTP server run here on 127.0.0.1 receives
  the Kari's Law POST while the 911 call is still up: caller, callback number and the location
  conveyed (equal to the provisioned one); the stored notification says it was sent there.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.peers.api import E911Api, ProvisionedLine, location_civic, pidf_civic, wait_for
from tests.peers.gateway import GatewayProcess

pytestmark = pytest.mark.peers

REG_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
RECORD_TIMEOUT = 10.0
MOVED_TO = "127.0.0.2"  # another loopback address: a different Contact host, same machine


@pytest.fixture
def e911(gateway: GatewayProcess) -> Iterator[E911Api]:
    client = E911Api(gateway.api_url, gateway.spec.token)
    yield client
    client.close()


def _registered(phone: Any, who: ProvisionedLine, gateway: GatewayProcess) -> None:
    phone.add_account(who.sip_account(gateway.sip_address))
    reg = phone.wait_event(REG_TIMEOUT, event="reg")
    assert reg is not None and reg["code"] == 200, f"REGISTER: {reg}"


def _first_fingerprint(e911: E911Api, who: ProvisionedLine) -> dict[str, Any]:
    status = wait_for(lambda: e911.device_e911(who.device_id), lambda s: s["last_fingerprint"] is not None,
                      RECORD_TIMEOUT, "the first REGISTER's network fingerprint")
    assert status["last_fingerprint"]["contact_host"] == "127.0.0.1", status
    assert status["location_stale"] is False, "a first registration is no move"
    return status


def _register_moved(phone_process: Callable[..., Any], who: ProvisionedLine, gateway: GatewayProcess) -> Any:
    moved = phone_process(who.sip_account(gateway.sip_address), name="moved", bind=MOVED_TO)
    reg = moved.expect(REG_TIMEOUT, event="reg")
    assert reg["code"] == 200, reg
    return moved


def _moved_911(e911: E911Api, moved: Any, who: ProvisionedLine) -> dict[str, Any]:
    """911 from the moved phone; answered, hung up; the gateway's record of it."""
    moved.send(cmd="call", uri=f"sip:911@{who.sip_domain}")
    confirmed = moved.expect(CALL_TIMEOUT, event="call_state", state="CONFIRMED")
    moved.send(cmd="hangup")
    moved.expect(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")
    [record] = wait_for(lambda: e911.emergency_calls(call_id=confirmed["sip_call_id"]),
                        lambda rows: len(rows) == 1, RECORD_TIMEOUT, "the moved device's 911 recorded")
    return record


def test_fixed_device_registering_from_another_host_is_flagged_stale(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any, phone_process: Callable[..., Any]
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    desk = e911.provision_e911_line(account, "201", site["id"], hardware_profile="yealink-t54w")
    _registered(pj_phone, desk, gateway)
    before = _first_fingerprint(e911, desk)
    assert (before["kind"], before["nomadic"]) == ("desk_phone", False), before

    moved = _register_moved(phone_process, desk, gateway)
    after = wait_for(lambda: e911.device_e911(desk.device_id), lambda s: s["location_stale"], RECORD_TIMEOUT,
                     "location_stale after the move")
    assert after["last_fingerprint"]["contact_host"] == MOVED_TO, after
    assert "127.0.0.1" in after["stale_reason"] and MOVED_TO in after["stale_reason"], after["stale_reason"]
    assert after["open_prompts"] == 0 and e911.location_prompts(desk.device_id) == [], "a fixed device is not prompted"

    e911.set_account_e911(account, stale_policy="national_centre")
    record = _moved_911(e911, moved, desk)
    assert (record["route_kind"], record["rule_id"], record["code"], record["with_location"]) == (
        "national_centre", "R13", "stale_location", False), record


def test_softphone_that_moved_is_flagged_and_its_user_prompted(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any, phone_process: Callable[..., Any]
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.create_site(account, "US")
    soft = e911.provision_e911_line(account, "201", site["id"])  # softphone-desktop: nomadic
    _registered(pj_phone, soft, gateway)
    assert _first_fingerprint(e911, soft)["nomadic"] is True

    moved = _register_moved(phone_process, soft, gateway)
    after = wait_for(lambda: e911.device_e911(soft.device_id),
                     lambda s: s["location_stale"] and s["open_prompts"] == 1, RECORD_TIMEOUT,
                     "location_stale and a prompt after the move")
    [prompt] = e911.location_prompts(soft.device_id, status="open")
    assert prompt["fingerprint"]["contact_host"] == MOVED_TO, prompt
    assert prompt["previous_fingerprint"]["contact_host"] == "127.0.0.1", prompt
    assert prompt["location_id"] == site["id"], prompt
    assert after["stale_policy"] == "use_last", after

    record = _moved_911(e911, moved, soft)  # default policy: last location, with a warning (R13)
    assert (record["route_kind"], record["rule_id"], record["code"]) == ("psap", "R13", "stale_location_used"), record
    assert record["warnings"], record
    assert pidf_civic(record["pidf"]) == location_civic(e911.location(site["id"]))


# --- Kari's Law -----------------------------------------------------------------------------------

class _Webhook:
    """An HTTP server on 127.0.0.1 that keeps every POST (path, headers, JSON body)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                hook.posts.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                   "body": json.loads(raw)})
                self.send_response(204)
                self.end_headers()
                hook.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="karis-law-hook", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/karis-law"

    def __enter__(self) -> _Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_karis_law_notification_reaches_the_account_webhook_during_the_call(
    gateway: GatewayProcess, e911: E911Api, pj_phone: Any
) -> None:
    account = e911.create_account(plan="connect", region="US")
    site = e911.location(e911.create_site(account, "US")["id"])
    who = e911.provision_e911_line(account, "201", site["id"])
    _registered(pj_phone, who, gateway)
    with _Webhook() as hook:
        assert e911.set_account_e911(account, notification_url=hook.url)["notification_url"] == hook.url

        since = len(pj_phone.events)
        pj_phone.call(f"sip:911@{who.sip_domain}")
        confirmed = pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="CONFIRMED")
        assert confirmed is not None, f"911 did not connect: {pj_phone.events[since:]}"
        # still in the call: the notification goes out when the call starts, not when it ends
        pj_phone.run_until(hook.arrived.is_set, RECORD_TIMEOUT)
        assert hook.arrived.is_set(), "no Kari's Law POST while the call was up"
        pj_phone.hangup(confirmed["call"])
        assert pj_phone.wait_event(CALL_TIMEOUT, event="call_state", state="DISCONNECTED")

    [post] = hook.posts
    body = post["body"]
    assert post["path"] == "/karis-law" and "json" in (post["content_type"] or ""), post
    assert (body["call_id"], body["account_id"], body["dialled"], body["route"]) == (
        confirmed["sip_call_id"], account, "911", "psap"), body
    assert body["caller"]["sip_username"] == who.sip_username and body["caller"]["extension"] == "201", body
    assert body["callback_number"] == site["callback_number"], body
    assert body["location_conveyed"] == location_civic(site), body
    assert pidf_civic(body["pidf_lo"]) == location_civic(site)

    [stored] = wait_for(lambda: e911.emergency_notifications(call_id=confirmed["sip_call_id"]),
                        lambda rows: len(rows) == 1 and rows[0]["status"] == "sent", RECORD_TIMEOUT,
                        "the notification stored as sent")
    assert (stored["url"], stored["account_id"]) == (hook.url, account), stored
    assert stored["payload"]["call_id"] == confirmed["sip_call_id"], stored

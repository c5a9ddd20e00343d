"""Lab control routes over HTTP (real uvicorn; SQLite and PostgreSQL for the organizer check)
against an in-memory `LabControl`: the simulated PSTN's rule book is the real
`gateway.pstn.rules.RuleBook` and room input goes through the bridge's own checks, so the
422/409/404 paths are the ones the gateway will produce; with no gateway every route is 503."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.conference.rooms import check_number, check_organizer, check_pin, new_number, new_pin
from gateway.pstn.rules import RuleBook
from provisioning.api import ProvisioningContext, create_app
from provisioning.api.context import LabConflict, LabControl
from provisioning.db import init_db, make_engine
from provisioning.events import ChangeBus
from tests import conftest_db
from tests.conftest_db import SIP_DOMAIN, ApiServer, ManualClock, loc

db_url = conftest_db.db_url

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeLab:
    """In-memory LabControl: what the running gateway holds, without sockets."""

    def __init__(self) -> None:
        self.rulebook = RuleBook()
        self.calls: list[dict[str, Any]] = []
        self.rooms: dict[str, dict[str, Any]] = {}
        self.pins: dict[str, str] = {}
        self.rosters: dict[str, list[dict[str, Any]]] = {}
        self.gateway_accounts: set[int] = set()  # accounts the gateway's directory snapshot knows
        self.bans: dict[str, dict[str, Any]] = {}
        self.psap: list[dict[str, Any]] = []

    # PSTN
    def pstn_rules(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rulebook.rules()]

    def set_pstn_rule(self, pattern: str, behaviour: str | dict[str, Any], note: str) -> dict[str, Any]:
        return self.rulebook.set_rule(pattern, behaviour, note).to_dict()

    def delete_pstn_rule(self, pattern: str) -> bool:
        return self.rulebook.remove_rule(pattern)

    def clear_pstn_rules(self) -> None:
        self.rulebook.clear()

    def pstn_calls(self, number: str | None, limit: int) -> list[dict[str, Any]]:
        return [c for c in reversed(self.calls) if number is None or c["number"] == number][:limit]

    def pstn_hang_up(self, call_id: str) -> bool:
        for call in self.calls:
            if call["call_id"] == call_id and call["state"] == "confirmed":
                call["state"], call["ended_by"] = "ended", "hangup"
                return True
        return False

    # conference bridge
    def conference_rooms(self, account_id: int | None) -> list[dict[str, Any]]:
        return [r for r in self.rooms.values() if account_id is None or r["account_id"] == account_id]

    def create_conference_room(self, account_id: int, organizer: str, number: str | None, pin: str | None,
                               name: str | None) -> dict[str, Any]:
        if account_id not in self.gateway_accounts:
            raise KeyError(f"account {account_id} is not in the gateway's directory yet")
        organizer = check_organizer(organizer)
        held = next((r for r in self.rooms.values() if r["organizer"] == organizer), None)
        if held is not None:
            raise LabConflict(f"organizer {organizer} already has room {held['number']} (R30)", "R30")
        number = check_number(number) if number is not None else new_number(lambda n: n in self.rooms)
        if number in self.rooms:
            raise LabConflict(f"room number {number} is taken (R30)", "R30")
        room = {"number": number, "organizer": organizer, "name": name or "", "account_id": account_id}
        self.rooms[number] = room
        self.pins[number] = check_pin(pin) if pin is not None else new_pin()
        self.rosters[number] = []
        return {**room, "pin": self.pins[number]}

    def conference_room(self, number: str) -> dict[str, Any] | None:
        return self.rooms.get(number)

    def delete_conference_room(self, number: str) -> bool:
        self.rosters.pop(number, None)
        return self.rooms.pop(number, None) is not None

    def conference_roster(self, number: str) -> list[dict[str, Any]] | None:
        return list(self.rosters[number]) if number in self.rooms else None

    def conference_kick(self, number: str, participant_id: str) -> bool:
        pid = int(participant_id)  # the bridge numbers connections; "abc" is a ValueError (422)
        roster = self.rosters.get(number, [])
        kept = [p for p in roster if p["id"] != pid]
        self.rosters[number] = kept
        return len(kept) < len(roster)

    # flood guard, PSAP
    def fraud_bans(self) -> list[dict[str, Any]]:
        return list(self.bans.values())

    def clear_fraud_ban(self, key: str) -> bool:
        return self.bans.pop(key, None) is not None

    def psap_calls(self, role: str | None, verdict: str | None, device_id: str | None) -> list[dict[str, Any]]:
        return [c for c in self.psap if (role is None or c["role"] == role)
                and (verdict is None or c["verdict"] == verdict)
                and (device_id is None or c["device_id"] == device_id)]


@dataclass
class LabApi:
    http: httpx.Client
    anon: httpx.Client
    down: httpx.Client  # same database, no gateway (ctx.lab is None)
    lab: FakeLab

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/api/v1{path}", params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(f"/api/v1{path}", json=body)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(f"/api/v1{path}")

    def account(self, *extensions: str) -> tuple[int, list[str]]:
        """A new account with users at `extensions`; (id, their named user IDs). The gateway knows it."""
        r = self.post("/accounts", {"name": f"lab-{secrets.token_hex(3)}", "plan": "openvoice", "region": "US"})
        assert r.status_code == 201, r.text
        account_id: int = r.json()["id"]
        names = []
        for ext in extensions:
            u = self.post(f"/accounts/{account_id}/users", {
                "named_user_id": f"org.{secrets.token_hex(4)}@example.com", "display_name": "Org",
                "extension": ext})
            assert u.status_code == 201, u.text
            names.append(u.json()["named_user_id"])
        self.lab.gateway_accounts.add(account_id)
        return account_id, names


@pytest.fixture(scope="module")
def api(db_url: str) -> Iterator[LabApi]:
    engine = make_engine(db_url)
    init_db(engine)
    token = secrets.token_urlsafe(16)
    fake = FakeLab()
    assert isinstance(fake, LabControl)  # the protocol, checked structurally
    common: dict[str, Any] = {"engine": engine, "api_token": token, "sip_domain": SIP_DOMAIN,
                              "now": ManualClock(NOW), "bus": ChangeBus()}
    auth = {"Authorization": f"Bearer {token}"}
    with ApiServer(create_app(ProvisioningContext(**common, lab=fake))) as up, \
            ApiServer(create_app(ProvisioningContext(**common))) as no_gateway, \
            httpx.Client(base_url=up.base_url, headers=auth, timeout=30) as http, \
            httpx.Client(base_url=up.base_url, timeout=30) as anon, \
            httpx.Client(base_url=no_gateway.base_url, headers=auth, timeout=30) as down:
        yield LabApi(http=http, anon=anon, down=down, lab=fake)
    engine.dispose()


ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/pstn/rules", None), ("POST", "/pstn/rules", {"pattern": "+44*", "behaviour": "busy"}),
    ("POST", "/pstn/rules:delete", {"pattern": "+44*"}), ("DELETE", "/pstn/rules", None),
    ("GET", "/pstn/calls", None), ("POST", "/pstn/calls/abc@host:hangup", None),
    ("GET", "/conferences", None), ("POST", "/conferences", {"account_id": 1, "organizer": "a@example.com"}),
    ("GET", "/conferences/123456", None), ("DELETE", "/conferences/123456", None),
    ("GET", "/conferences/123456/roster", None), ("POST", "/conferences/123456/participants/1:kick", None),
    ("GET", "/fraud/bans", None), ("POST", "/fraud/bans:clear", {"key": "src:100"}), ("GET", "/psap/calls", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_lab_route_needs_the_token_and_a_running_gateway(api: LabApi, method: str, path: str,
                                                               body: dict[str, Any] | None) -> None:
    r = api.anon.request(method, f"/api/v1{path}", json=body)
    assert r.status_code == 401
    r = api.down.request(method, f"/api/v1{path}", json=body)
    assert r.status_code == 503 and r.json() == {"detail": "gateway not running"}


# --- simulated PSTN -----------------------------------------------------------------------------

def test_pstn_rules_set_replace_delete_and_clear(api: LabApi) -> None:
    api.lab.rulebook.clear()
    defaults = api.get("/pstn/rules").json()
    assert defaults and {r["source"] for r in defaults} == {"default"}
    r = api.post("/pstn/rules", {"pattern": "+44*", "behaviour": "busy", "note": "UK is busy"})
    assert r.status_code == 200, r.text
    assert r.json()["behaviour"]["status"] == 486 and r.json()["note"] == "UK is busy"
    r = api.post("/pstn/rules", {"pattern": "+44*", "behaviour": {"action": "answer", "hang_up_after": 10}})
    assert r.json()["behaviour"]["hang_up_after"] == 10
    api.post("/pstn/rules", {"pattern": "+1415555XXXX", "behaviour": "not-found"})
    listed = api.get("/pstn/rules").json()
    api_rules = [x for x in listed if x["source"] == "api"]
    assert [x["pattern"] for x in api_rules] == ["+1415555XXXX", "+44*"]  # most specific first
    assert api_rules[1]["behaviour"]["action"] == "answer"  # replaced, not added
    assert len(listed) == len(defaults) + 2

    r = api.post("/pstn/rules:delete", {"pattern": "+44*"})
    assert r.status_code == 200 and r.json() == {"deleted": "+44*"}
    r = api.post("/pstn/rules:delete", {"pattern": "+44*"})
    assert r.status_code == 404 and "+44*" in r.json()["detail"]
    assert api.delete("/pstn/rules").status_code == 204
    assert api.get("/pstn/rules").json() == defaults


@pytest.mark.parametrize(("body", "field", "needle"), [
    ({"pattern": "44#1", "behaviour": "busy"}, None, "bad number pattern"),
    ({"pattern": "+44*", "behaviour": "explode"}, None, "unknown behaviour"),
    ({"pattern": "+44*", "behaviour": {"action": "reject"}}, None, "needs a status"),
    ({"pattern": "+44*", "behaviour": {"action": "answer", "hang_up_after": "soon"}}, None, "seconds"),
    ({"pattern": "", "behaviour": "busy"}, "pattern", None),
    ({"pattern": "+44*", "behaviour": "busy", "colour": "red"}, "colour", None),
])
def test_pstn_rule_refusals_are_422(api: LabApi, body: dict[str, Any], field: str | None,
                                    needle: str | None) -> None:
    r = api.post("/pstn/rules", body)
    if field is not None:
        assert ["body", field] in loc(r)
    else:
        assert loc(r) == [["body"]] and needle in r.json()["detail"][0]["msg"]
    assert all(x["pattern"] != "+44*" for x in api.get("/pstn/rules").json() if x["source"] == "api")


def test_pstn_calls_listed_filtered_and_hung_up(api: LabApi) -> None:
    odd_id = "a/b@lab.test"  # Call-IDs may hold '/': the path keeps it
    api.lab.calls[:] = [
        {"call_id": "one@lab", "number": "+15125550100", "state": "ended", "ended_by": "bye"},
        {"call_id": odd_id, "number": "+15125550100", "state": "confirmed", "ended_by": None},
        {"call_id": "three@lab", "number": "+442079460000", "state": "confirmed", "ended_by": None},
    ]
    assert [c["call_id"] for c in api.get("/pstn/calls").json()] == ["three@lab", odd_id, "one@lab"]
    assert [c["call_id"] for c in api.get("/pstn/calls", number="+15125550100", limit=1).json()] == [odd_id]
    assert ["query", "limit"] in loc(api.get("/pstn/calls", limit=0))

    r = api.http.post(f"/api/v1/pstn/calls/{odd_id}:hangup")
    assert r.status_code == 200 and r.json() == {"hung_up": odd_id}
    assert api.lab.calls[1]["ended_by"] == "hangup"
    assert api.http.post(f"/api/v1/pstn/calls/{odd_id}:hangup").status_code == 404  # ended now
    r = api.http.post("/api/v1/pstn/calls/one@lab:hangup")
    assert r.status_code == 404 and "one@lab" in r.json()["detail"]


# --- conference rooms (R30) ---------------------------------------------------------------------

def test_conference_room_lifecycle_with_roster_and_kick(api: LabApi) -> None:
    acc, (org,) = api.account("201")
    r = api.post("/conferences", {"account_id": acc, "organizer": org, "name": "Weekly"})
    assert r.status_code == 201, r.text
    room = r.json()
    number, pin = room["number"], room["pin"]
    assert number.isdecimal() and pin.isdecimal() and room["organizer"] == org and room["account_id"] == acc

    assert [x["number"] for x in api.get("/conferences", account_id=acc).json()] == [number]
    assert number in [x["number"] for x in api.get("/conferences").json()]
    assert api.get(f"/conferences/{number}").json()["name"] == "Weekly"
    assert api.get(f"/conferences/{number}/roster").json() == []

    joined = (NOW + timedelta(minutes=1)).isoformat()
    api.lab.rosters[number] = [{"id": 1, "role": "organizer", "caller": "sip:201@lab", "joined_at": joined},
                               {"id": 2, "role": "participant", "caller": "sip:+15125550100@lab",
                                "joined_at": joined}]
    assert [p["id"] for p in api.get(f"/conferences/{number}/roster").json()] == [1, 2]
    r = api.http.post(f"/api/v1/conferences/{number}/participants/2:kick")
    assert r.status_code == 200 and r.json() == {"kicked": "2", "room": number}
    assert [p["id"] for p in api.get(f"/conferences/{number}/roster").json()] == [1]
    assert api.http.post(f"/api/v1/conferences/{number}/participants/2:kick").status_code == 404
    r = api.http.post(f"/api/v1/conferences/{number}/participants/abc:kick")
    assert r.status_code == 422 and "abc" in r.json()["detail"][0]["msg"]

    assert api.delete(f"/conferences/{number}").status_code == 204
    for path in (f"/conferences/{number}", f"/conferences/{number}/roster"):
        r = api.get(path)
        assert r.status_code == 404 and number in r.json()["detail"]
    assert api.delete(f"/conferences/{number}").status_code == 404
    assert api.http.post(f"/api/v1/conferences/{number}/participants/1:kick").status_code == 404


def test_room_numbers_are_unique_and_an_organizer_holds_one_room(api: LabApi) -> None:
    acc, (first, second) = api.account("301", "302")
    number = str(70_000_000 + secrets.randbelow(9_999_999))
    r = api.post("/conferences", {"account_id": acc, "organizer": first, "number": number, "pin": "4321"})
    assert r.status_code == 201 and (r.json()["number"], r.json()["pin"]) == (number, "4321")
    r = api.post("/conferences", {"account_id": acc, "organizer": second, "number": number})
    assert r.status_code == 409 and r.json()["rule_id"] == "R30" and number in r.json()["detail"]
    r = api.post("/conferences", {"account_id": acc, "organizer": first})  # the lab refuses (LabConflict)
    assert r.status_code == 409 and r.json()["rule_id"] == "R30" and first in r.json()["detail"]
    assert [x["organizer"] for x in api.get("/conferences", account_id=acc).json()] == [first]


def test_the_organizer_must_be_a_named_user_of_the_account(api: LabApi) -> None:
    acc, _ = api.account("401")
    _, (stranger,) = api.account("402")
    r = api.post("/conferences", {"account_id": acc, "organizer": stranger})
    assert ["body", "organizer"] in loc(r)
    assert "R30" in r.json()["detail"][0]["msg"] and r.json()["detail"][0]["rule"] == "R30"
    r = api.post("/conferences", {"account_id": acc, "organizer": "nobody@example.com"})
    assert ["body", "organizer"] in loc(r)
    r = api.post("/conferences", {"account_id": 987654, "organizer": stranger})
    assert r.status_code == 404 and "987654" in r.json()["detail"]
    assert api.get("/conferences", account_id=acc).json() == []


def test_conference_input_refusals(api: LabApi) -> None:
    acc, (org,) = api.account("501")
    assert ["body", "pin"] in loc(api.post("/conferences", {"account_id": acc, "organizer": org, "pin": "12"}))
    assert ["body", "number"] in loc(api.post("/conferences", {"account_id": acc, "organizer": org,
                                                                "number": "+1415"}))
    assert ["body", "account_id"] in loc(api.post("/conferences", {"organizer": org}))
    # the database has the account, the gateway's directory not yet: the lab's KeyError is a 404
    api.lab.gateway_accounts.discard(acc)
    r = api.post("/conferences", {"account_id": acc, "organizer": org})
    assert r.status_code == 404 and "directory" in r.json()["detail"]
    assert api.get("/conferences", account_id=acc).json() == []


# --- flood-guard bans (R27) and the PSAP log ----------------------------------------------------

def test_fraud_bans_are_visible_and_clearable(api: LabApi) -> None:
    until = (NOW + timedelta(minutes=5)).isoformat()
    api.lab.bans = {"src:sip:100@lab": {"key": "src:sip:100@lab", "until": until, "kind": "source"},
                    "dst:+15125550100": {"key": "dst:+15125550100", "until": until, "kind": "callee"}}
    assert {b["kind"] for b in api.get("/fraud/bans").json()} == {"source", "callee"}
    r = api.post("/fraud/bans:clear", {"key": "src:sip:100@lab"})
    assert r.status_code == 200 and r.json() == {"cleared": "src:sip:100@lab"}
    assert [b["key"] for b in api.get("/fraud/bans").json()] == ["dst:+15125550100"]
    r = api.post("/fraud/bans:clear", {"key": "src:sip:100@lab"})
    assert r.status_code == 404 and "src:sip:100@lab" in r.json()["detail"]
    assert ["body", "key"] in loc(api.post("/fraud/bans:clear", {"key": ""}))


def test_psap_calls_filtered(api: LabApi) -> None:
    api.lab.psap = [{"call_id": "e1", "role": "emergency", "verdict": "pass", "device_id": "7"},
                    {"call_id": "e2", "role": "emergency", "verdict": "fail", "device_id": "8"},
                    {"call_id": "n1", "role": "national_centre", "verdict": "pass", "device_id": "7"}]
    assert [c["call_id"] for c in api.get("/psap/calls").json()] == ["e1", "e2", "n1"]
    assert [c["call_id"] for c in api.get("/psap/calls", role="emergency", verdict="pass").json()] == ["e1"]
    assert [c["call_id"] for c in api.get("/psap/calls", device_id="7").json()] == ["e1", "n1"]

"""The provisioning API as the integration tests use it: every path and field name lives here.

When the API changes shape, this module (and `API_CONTRACT`, checked against `/openapi.json` by
tests/integration/test_peers_api_contract.py) is the one place to mend.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from tests.peers.accounts import SipAccount

API = "/api/v1"

# (method, path template, request body fields) the harness relies on; response fields below.
API_CONTRACT: list[tuple[str, str, tuple[str, ...]]] = [
    ("post", f"{API}/accounts", ("name", "plan", "region")),
    ("post", f"{API}/accounts/{{account_id}}/users", ("named_user_id", "display_name", "extension")),
    ("post", f"{API}/accounts/{{account_id}}/locations", ("country", "callback_number", "a1", "a3", "rd", "hno", "pc")),
    ("post", f"{API}/accounts/{{account_id}}/devices", ("hardware_profile", "name", "lines")),
    ("post", f"{API}/devices/{{device_id}}/location", ("location_id",)),
    ("post", f"{API}/devices/{{device_id}}/activate", ()),
    ("get", f"{API}/registrations", ()),
    ("get", f"{API}/calls", ()),
    ("get", f"{API}/cdrs", ()),
    ("get", "/healthz", ()),
    # call policy (#5): the lab controls and the account's money side
    ("get", f"{API}/users/{{user_id}}", ()),
    ("post", f"{API}/accounts/{{account_id}}/deposit", ("amount_usd",)),
    ("put", f"{API}/accounts/{{account_id}}/allowed-prefixes", ("prefixes",)),
    ("get", f"{API}/accounts/{{account_id}}/usage", ()),
    ("get", f"{API}/cdrs.csv", ()),
    ("get", f"{API}/pstn/rules", ()),
    ("post", f"{API}/pstn/rules", ("pattern", "behaviour", "note")),
    ("post", f"{API}/pstn/rules:delete", ("pattern",)),
    ("get", f"{API}/pstn/calls", ()),
    ("post", f"{API}/pstn/calls/{{call_id}}:hangup", ()),
    ("post", f"{API}/conferences", ("account_id", "organizer", "number", "pin")),
    ("get", f"{API}/conferences/{{number}}/roster", ()),
    ("get", f"{API}/fraud/bans", ()),
    ("post", f"{API}/fraud/bans:clear", ("key",)),
]
# Response schemas (by OpenAPI component name) and the fields read from them.
RESPONSE_CONTRACT: dict[str, tuple[str, ...]] = {
    "AccountOut": ("id", "deposit_usd", "allowed_prefixes"),
    "UserOut": ("id", "extension", "named_user_id"),
    "LocationOut": ("id",),
    "DeviceCreated": ("id", "state", "lines"),
    "LineCredentials": ("user_id", "sip_username", "sip_password", "sip_domain"),
    "CdrOut": ("account_id", "call_id", "disposition", "duration_s", "answer", "end", "sip_code",
               # rated records (#5), read by tests/integration/test_policy_*.py
               "reason", "rule_id", "call_type", "destination", "billable_s", "plan"),
    "UsageOut": ("account_id", "month", "by_call_type", "totals"),
}
# Live views are free-form dicts; the keys read from them:
REGISTRATION_KEYS = ("aor", "account_id", "contact", "source")
CALL_KEYS = ("call_id", "account_id", "state")
# …and from the lab views (call policy, #5): GET /pstn/calls, /conferences/{n}/roster, /fraud/bans
PSTN_CALL_KEYS = ("call_id", "number", "rule", "rule_source", "state", "status", "ended_by", "rtp")
ROSTER_KEYS = ("role", "call_id", "state")
BAN_KEYS = ("key", "kind", "until")

_serial = itertools.count(1)
_PEOPLE = [
    ("Ada", "Lovelace"),
    ("Alan", "Turing"),
    ("Grace", "Hopper"),
    ("Edsger", "Dijkstra"),
    ("Barbara", "Liskov"),
    ("Claude", "Shannon"),
    ("Frances", "Allen"),
    ("Dennis", "Ritchie"),
]


class ApiError(AssertionError):
    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        self.status = response.status_code
        self.body = response.text
        super().__init__(f"{method.upper()} {path} → {response.status_code}: {response.text[:2000]}")


@dataclass(frozen=True)
class ProvisionedLine:
    """One device line, with the credentials the API returned once."""

    account_id: int
    user_id: int
    device_id: int
    extension: str
    sip_username: str
    sip_password: str
    sip_domain: str

    def sip_account(self, registrar: str, **kw: Any) -> SipAccount:
        return SipAccount(
            username=self.sip_username,
            password=self.sip_password,
            domain=self.sip_domain,
            registrar=registrar,
            **kw,
        )

    def uri(self) -> str:
        """What other phones dial: the extension in the gateway's domain."""
        return f"sip:{self.extension}@{self.sip_domain}"


class VoiplabApi:
    """Thin synchronous client; non-2xx answers raise ApiError with the body."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        self.client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                params: dict[str, Any] | None = None) -> Any:
        resp = self.client.request(method, path, json=body, params=params)
        if resp.status_code // 100 != 2:
            raise ApiError(method, path, resp)
        return resp.json() if resp.content else None

    # --- provisioning ---------------------------------------------------------------------------
    def create_account(self, name: str | None = None, plan: str = "connect", region: str = "US") -> int:
        name = name or f"peers-test-{next(_serial)}-{secrets.token_hex(3)}"
        return int(self.request("post", f"{API}/accounts", {"name": name, "plan": plan, "region": region})["id"])

    def create_user(self, account_id: int, extension: str, display_name: str | None = None) -> int:
        # R1: a named user ID names a person, never a role ("user201@…" is refused as generic)
        first, last = _PEOPLE[int(extension) % len(_PEOPLE)]
        body = {
            "named_user_id": f"{first}.{last}.{secrets.token_hex(4)}@peers.example.com".lower(),
            "display_name": display_name or f"{first} {last}",
            "extension": extension,
        }
        return int(self.request("post", f"{API}/accounts/{account_id}/users", body)["id"])

    def create_location(self, account_id: int) -> int:
        body = {
            "name": "peers test desk",
            "country": "US",
            "a1": "TX",
            "a3": "Austin",
            "rd": "Congress",
            "sts": "Ave",
            "hno": "100",
            "pc": "78701",
            "callback_number": "+15125550100",
        }
        return int(self.request("post", f"{API}/accounts/{account_id}/locations", body)["id"])

    def create_device(self, account_id: int, user_ids: list[int],
                      hardware_profile: str = "softphone-desktop") -> dict[str, Any]:
        body = {
            "hardware_profile": hardware_profile,
            "name": f"peers-{hardware_profile}-{next(_serial)}",
            "lines": [{"user_id": uid} for uid in user_ids],
        }
        result: dict[str, Any] = self.request("post", f"{API}/accounts/{account_id}/devices", body)
        return result

    def set_location(self, device_id: int, location_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "post", f"{API}/devices/{device_id}/location", {"location_id": location_id}
        )
        return result

    def activate(self, device_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("post", f"{API}/devices/{device_id}/activate")
        return result

    def provision_line(self, account_id: int, extension: str, *, locate: bool = True,
                       activate: bool = True) -> ProvisionedLine:
        """User + softphone device with one line; located and activated unless told otherwise."""
        user_id = self.create_user(account_id, extension)
        device = self.create_device(account_id, [user_id])
        line = device["lines"][0]
        if locate:
            self.set_location(int(device["id"]), self.create_location(account_id))
        if activate:
            self.activate(int(device["id"]))
        return ProvisionedLine(
            account_id=account_id,
            user_id=user_id,
            device_id=int(device["id"]),
            extension=extension,
            sip_username=str(line["sip_username"]),
            sip_password=str(line["sip_password"]),
            sip_domain=str(line["sip_domain"]),
        )

    # --- live state and records ---------------------------------------------------------------
    def registrations(self, account_id: int | None = None) -> list[dict[str, Any]]:
        params = {"account_id": account_id} if account_id is not None else None
        result: list[dict[str, Any]] = self.request("get", f"{API}/registrations", params=params)
        return result

    def calls(self, account_id: int | None = None) -> list[dict[str, Any]]:
        params = {"account_id": account_id} if account_id is not None else None
        result: list[dict[str, Any]] = self.request("get", f"{API}/calls", params=params)
        return result

    def cdrs(self, account_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("get", f"{API}/cdrs", params={"account_id": account_id})
        return result

    def openapi(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("get", "/openapi.json")
        return result

    # --- call policy (#5): money side of an account, rated records, lab controls ---------------
    def user(self, user_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("get", f"{API}/users/{user_id}")
        return result

    def named_user_id(self, user_id: int) -> str:
        """The person a room belongs to (R30 organizers are named users of the account)."""
        return str(self.user(user_id)["named_user_id"])

    def deposit(self, account_id: int, amount_usd: int) -> dict[str, Any]:
        """Record a deposit (R24); the answer's `deposit_usd` is the running total."""
        result: dict[str, Any] = self.request(
            "post", f"{API}/accounts/{account_id}/deposit", {"amount_usd": amount_usd}
        )
        return result

    def set_allowed_prefixes(self, account_id: int, prefixes: list[str]) -> dict[str, Any]:
        """Prefixes the account may call although its plan blocks them (R25)."""
        result: dict[str, Any] = self.request(
            "put", f"{API}/accounts/{account_id}/allowed-prefixes", {"prefixes": prefixes}
        )
        return result

    def usage(self, account_id: int, month: str | None = None) -> dict[str, Any]:
        params = {"month": month} if month is not None else None
        result: dict[str, Any] = self.request("get", f"{API}/accounts/{account_id}/usage", params=params)
        return result

    def cdrs_where(self, **filters: Any) -> list[dict[str, Any]]:
        """GET /cdrs with any of its filters (account_id, call_id, rule_id, call_type, …)."""
        result: list[dict[str, Any]] = self.request("get", f"{API}/cdrs", params=filters)
        return result

    def cdrs_csv(self, **filters: Any) -> str:
        resp = self.client.get(f"{API}/cdrs.csv", params=filters)
        if resp.status_code // 100 != 2:
            raise ApiError("get", f"{API}/cdrs.csv", resp)
        return resp.text

    def set_pstn_rule(self, pattern: str, behaviour: str | dict[str, Any], note: str = "") -> dict[str, Any]:
        """What the simulated PSTN does for numbers matching `pattern` (global to the gateway:
        pair with `delete_pstn_rule`)."""
        result: dict[str, Any] = self.request(
            "post", f"{API}/pstn/rules", {"pattern": pattern, "behaviour": behaviour, "note": note}
        )
        return result

    def delete_pstn_rule(self, pattern: str) -> None:
        self.request("post", f"{API}/pstn/rules:delete", {"pattern": pattern})

    def pstn_calls(self, number: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if number is not None:
            params["number"] = number
        result: list[dict[str, Any]] = self.request("get", f"{API}/pstn/calls", params=params)
        return result

    def pstn_hang_up(self, call_id: str) -> None:
        """The PSTN side of a live call sends its BYE."""
        self.request("post", f"{API}/pstn/calls/{call_id}:hangup")

    def create_conference(self, account_id: int, organizer: str, *, pin: str | None = None,
                          number: str | None = None) -> dict[str, Any]:
        """A room (R30); the answer carries `number` and the organizer `pin`."""
        body: dict[str, Any] = {"account_id": account_id, "organizer": organizer}
        if pin is not None:
            body["pin"] = pin
        if number is not None:
            body["number"] = number
        result: dict[str, Any] = self.request("post", f"{API}/conferences", body)
        return result

    def conference_roster(self, number: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("get", f"{API}/conferences/{number}/roster")
        return result

    def fraud_bans(self) -> list[dict[str, Any]]:
        """R27 bans in force: `key` ("src:<sip username>" or "dst:<account>:<number>"), `until`, `kind`."""
        result: list[dict[str, Any]] = self.request("get", f"{API}/fraud/bans")
        return result

    def clear_fraud_ban(self, key: str) -> None:
        self.request("post", f"{API}/fraud/bans:clear", {"key": key})


# --- reading live rows and records (field names stay in this module) ---------------------------
def registered_usernames(rows: list[dict[str, Any]]) -> set[str]:
    """User parts of the AORs in GET /registrations rows."""
    return {u for u in (_aor_user(str(row.get("aor", ""))) for row in rows) if u}


def _aor_user(aor: str) -> str:
    return aor.split(":", 1)[-1].split("@", 1)[0]


def registration_transports(rows: list[dict[str, Any]], username: str) -> set[str]:
    """Transports ("udp", "tcp", …) the bindings of `username` were registered over."""
    return {
        str(r.get("source", "")).split(":", 1)[0]
        for r in rows
        if _aor_user(str(r.get("aor", ""))) == username
    }


def call_ids(rows: list[dict[str, Any]]) -> set[str]:
    return {str(r.get("call_id")) for r in rows}


def cdr_summary(cdr: dict[str, Any]) -> dict[str, Any]:
    """The fields the tests assert on, under stable names."""
    return {
        "call_id": cdr.get("call_id"),
        "disposition": cdr.get("disposition"),
        "duration": cdr.get("duration_s"),
        "sip_code": cdr.get("sip_code"),
        "answered": cdr.get("answer") is not None,
        "ended": cdr.get("end") is not None,
    }


# ================================================================================================
# E911 (#4): helpers for tests/integration/test_e911_*.py — locations per country, R15 notices,
# R11 outages and suspension, R13 fingerprints and prompts, PSAP verdicts, Kari's Law records.
# Kept in this one section (the contract lists are merged into the ones above at import time, so
# tests/integration/test_peers_api_contract.py checks these names against /openapi.json too).
# ================================================================================================
import time  # noqa: E402  (imports of this section stay in it: another section is edited in parallel)
from collections.abc import Callable  # noqa: E402
from typing import TypeVar  # noqa: E402

T = TypeVar("T")

E911_API_CONTRACT: list[tuple[str, str, tuple[str, ...]]] = [
    ("post", f"{API}/accounts/{{account_id}}/locations", ("country", "callback_number", "a1", "a3", "rd",
                                                          "sts", "hno", "pc", "flr", "room", "name")),
    ("get", f"{API}/locations/{{location_id}}", ()),
    ("get", f"{API}/hardware-profiles/{{profile_id}}", ()),
    ("patch", f"{API}/accounts/{{account_id}}", ("stale_policy", "notification_url")),
    ("post", f"{API}/accounts/{{account_id}}/devices", ("hardware_profile", "name", "mac", "lines")),
    # body {"acknowledged_by"} is optional (anyOf NoticeAck | null): checked on NoticeOut below
    ("post", f"{API}/devices/{{device_id}}/e911-notice:acknowledge", ()),
    ("get", f"{API}/devices/{{device_id}}/e911", ()),
    ("get", f"{API}/devices/{{device_id}}/location-prompts", ()),
    ("post", f"{API}/accounts/{{account_id}}/suspend", ()),
    ("post", f"{API}/accounts/{{account_id}}/resume", ()),
    ("post", f"{API}/locations/{{location_id}}/outages", ("kind", "note")),
    ("post", f"{API}/outages/{{outage_id}}:end", ()),
    ("get", f"{API}/psap/calls", ()),
    ("get", f"{API}/emergency/calls", ()),
    ("get", f"{API}/emergency/psap-calls", ()),
    ("get", f"{API}/emergency/notifications", ()),
    ("get", f"{API}/audit", ()),
]
E911_RESPONSE_CONTRACT: dict[str, tuple[str, ...]] = {
    "AccountOut": ("status", "stale_policy", "notification_url"),
    "LocationOut": ("id", "country", "callback_number", "validation_status"),
    "NoticeOut": ("acknowledged_at", "acknowledged_by"),
    "DeviceE911Out": ("location_forwarding", "location_stale", "stale_reason", "last_fingerprint",
                      "open_prompts", "nomadic", "kind"),
    "PromptOut": ("status", "reason", "fingerprint", "previous_fingerprint"),
    "OutageOut": ("id", "kind", "active"),
    "EmergencyCallOut": ("call_id", "route_kind", "code", "rule_id", "reason", "sip_status", "with_location",
                         "callback", "pidf", "dialled", "service_urn", "psap"),
    "NotificationOut": ("call_id", "url", "status", "payload"),
}
# GET /psap/calls rows are free-form dicts; the keys read from them:
PSAP_CALL_KEYS = ("call_id", "role", "verdict", "failed_checks", "callback", "pidf", "conveyed",
                  "differences", "readback", "request_uri", "service_urn", "status", "state")
API_CONTRACT.extend(E911_API_CONTRACT)
for _schema, _fields in E911_RESPONSE_CONTRACT.items():
    RESPONSE_CONTRACT[_schema] = tuple(dict.fromkeys(RESPONSE_CONTRACT.get(_schema, ()) + _fields))
del _schema, _fields

#: dispatchable addresses the country profiles in e911/data/countries.toml accept, one per account
#: region the emergency dial plans know, with an E.164 callback in that country
E911_SITES: dict[str, dict[str, str]] = {
    "US": {"name": "Austin office, 7th floor", "country": "US", "a1": "TX", "a3": "Austin", "rd": "Congress",
           "sts": "Ave", "hno": "100", "pc": "78701", "flr": "7", "room": "702",
           "callback_number": "+15125550100"},
    "EU": {"name": "Berlin office", "country": "DE", "a1": "Berlin", "a3": "Berlin", "rd": "Unter den Linden",
           "hno": "77", "pc": "10117", "callback_number": "+49301234567"},
    "UK": {"name": "London office", "country": "GB", "a3": "London", "rd": "Downing Street", "hno": "10",
           "pc": "SW1A 2AA", "callback_number": "+442079460000"},
}
#: RFC 5139 civic elements as the API names them (lower case) — what a PIDF-LO may carry
CIVIC_ELEMENTS = ("country", "a1", "a2", "a3", "a4", "a5", "a6", "prm", "prd", "rd", "sts", "pod", "pom",
                  "rdsec", "rdbr", "rdsubbr", "hno", "hns", "lmk", "loc", "flr", "nam", "pc", "bld", "unit",
                  "room", "seat", "plc", "pcn", "pobox", "addcode")


def random_mac(oui: str = "001565") -> str:
    """A MAC in the vendor block `oui` (6 hex digits; the device validation checks it against the
    hardware profile's vendor), random enough for one test run."""
    octets = [oui[i:i + 2].upper() for i in (0, 2, 4)] + [f"{b:02X}" for b in secrets.token_bytes(3)]
    return ":".join(octets)


class E911Api(VoiplabApi):
    """VoiplabApi plus the E911 routes (#4); same client, same error handling."""

    # --- locations, devices, R15 ----------------------------------------------------------------
    def create_site(self, account_id: int, region: str = "US", **overrides: str) -> dict[str, Any]:
        """A validated location from `E911_SITES[region]` (fields overridable); the stored row."""
        body = {**E911_SITES[region], **overrides}
        result: dict[str, Any] = self.request("post", f"{API}/accounts/{account_id}/locations", body)
        return result

    def location(self, location_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("get", f"{API}/locations/{location_id}")
        return result

    def create_device_with(self, account_id: int, user_ids: list[int], hardware_profile: str,
                           mac: str | None = None) -> dict[str, Any]:
        """A device of any profile; fixed devices (desk phones, ATAs …) get a MAC."""
        body: dict[str, Any] = {
            "hardware_profile": hardware_profile,
            "name": f"e911-{hardware_profile}-{next(_serial)}",
            "lines": [{"user_id": uid} for uid in user_ids],
        }
        if mac is not None:
            body["mac"] = mac
        result: dict[str, Any] = self.request("post", f"{API}/accounts/{account_id}/devices", body)
        return result

    def profile_oui(self, hardware_profile: str) -> str:
        """An OUI the profile's vendor owns (a locally administered one when the profile lists none)."""
        ouis = self.request("get", f"{API}/hardware-profiles/{hardware_profile}").get("ouis") or ["02c0de"]
        return str(ouis[0])

    def acknowledge_notice(self, device_id: int, by: str = "peers test") -> dict[str, Any]:
        """R15: the customer acknowledged the 'device is active' notice; forwarding turns on."""
        result: dict[str, Any] = self.request(
            "post", f"{API}/devices/{device_id}/e911-notice:acknowledge", {"acknowledged_by": by})
        return result

    def provision_e911_line(self, account_id: int, extension: str, location_id: int | None, *,
                            hardware_profile: str = "softphone-desktop", activate: bool = True,
                            acknowledge: bool = True) -> ProvisionedLine:
        """User + device (a MAC unless a softphone) + location; activated and its notice
        acknowledged unless told otherwise."""
        user_id = self.create_user(account_id, extension)
        mac = None if hardware_profile.startswith("softphone") else random_mac(self.profile_oui(hardware_profile))
        device = self.create_device_with(account_id, [user_id], hardware_profile, mac)
        device_id = int(device["id"])
        if location_id is not None:
            self.set_location(device_id, location_id)
        if activate:
            self.activate(device_id)
            if acknowledge:
                self.acknowledge_notice(device_id)
        line = device["lines"][0]
        return ProvisionedLine(
            account_id=account_id, user_id=user_id, device_id=device_id, extension=extension,
            sip_username=str(line["sip_username"]), sip_password=str(line["sip_password"]),
            sip_domain=str(line["sip_domain"]),
        )

    def device_e911(self, device_id: int) -> dict[str, Any]:
        """Forwarding (R15), stale flag and fingerprint (R13), open prompts, outages (R11)."""
        result: dict[str, Any] = self.request("get", f"{API}/devices/{device_id}/e911")
        return result

    def location_prompts(self, device_id: int, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status is not None else None
        result: list[dict[str, Any]] = self.request(
            "get", f"{API}/devices/{device_id}/location-prompts", params=params)
        return result

    # --- account E911 settings, R11 -------------------------------------------------------------
    def set_account_e911(self, account_id: int, **settings: Any) -> dict[str, Any]:
        """PATCH stale_policy / notification_url."""
        result: dict[str, Any] = self.request("patch", f"{API}/accounts/{account_id}", settings)
        return result

    def suspend_account(self, account_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("post", f"{API}/accounts/{account_id}/suspend")
        return result

    def resume_account(self, account_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("post", f"{API}/accounts/{account_id}/resume")
        return result

    def start_outage(self, location_id: int, kind: str, note: str = "peers test") -> dict[str, Any]:
        """A simulated "power" / "internet" outage at the site (R11)."""
        result: dict[str, Any] = self.request(
            "post", f"{API}/locations/{location_id}/outages", {"kind": kind, "note": note})
        return result

    def end_outage(self, outage_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("post", f"{API}/outages/{outage_id}:end")
        return result

    # --- what the PSAP simulator and the gateway recorded -----------------------------------------
    def psap_calls(self, **filters: Any) -> list[dict[str, Any]]:
        """The PSAP simulator's in-memory verdicts (role, verdict, device_id filters)."""
        result: list[dict[str, Any]] = self.request("get", f"{API}/psap/calls", params=filters or None)
        return result

    def psap_call(self, call_id: str) -> dict[str, Any] | None:
        return next((c for c in self.psap_calls() if c.get("call_id") == call_id), None)

    def emergency_calls(self, **filters: Any) -> list[dict[str, Any]]:
        """Persisted emergency call records (account_id, device_id, route, call_id filters)."""
        result: list[dict[str, Any]] = self.request("get", f"{API}/emergency/calls", params=filters or None)
        return result

    def stored_psap_calls(self, **filters: Any) -> list[dict[str, Any]]:
        """Persisted PSAP verdicts (role, verdict, device_id filters)."""
        result: list[dict[str, Any]] = self.request(
            "get", f"{API}/emergency/psap-calls", params=filters or None)
        return result

    def emergency_notifications(self, **filters: Any) -> list[dict[str, Any]]:
        """Kari's Law notifications as stored (account_id, call_id, status filters)."""
        result: list[dict[str, Any]] = self.request(
            "get", f"{API}/emergency/notifications", params=filters or None)
        return result

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        """The append-only audit log (account_id, entity, entity_id filters)."""
        result: list[dict[str, Any]] = self.request("get", f"{API}/audit", params=filters or None)
        return result


def location_civic(location: dict[str, Any]) -> dict[str, str]:
    """The civic elements of a LocationOut row that are set (the ones a PIDF-LO must carry)."""
    return {k: str(location[k]) for k in CIVIC_ELEMENTS if location.get(k) not in (None, "")}


_CIVIC_NS = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"


def pidf_civic(pidf: str) -> dict[str, str]:
    """The civic elements of a PIDF-LO, read with lxml here (not with the gateway's own parser),
    keyed as the API names them (RFC 5139 element names in lower case)."""
    from lxml import etree  # only the E911 tests need it

    root = etree.fromstring(pidf.encode("utf-8"))
    addresses = root.findall(f".//{{{_CIVIC_NS}}}civicAddress")
    if len(addresses) != 1:
        raise AssertionError(f"expected one ca:civicAddress in the PIDF-LO, found {len(addresses)}")
    return {etree.QName(el).localname.lower(): (el.text or "") for el in addresses[0]
            if isinstance(el.tag, str)}


def wait_for(fetch: Callable[[], T], ready: Callable[[T], bool], timeout: float, what: str,
             interval: float = 0.1) -> T:
    """Poll `fetch()` until `ready(value)` (records are written off the SIP path); AssertionError
    naming `what` and the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ready(value):
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not seen within {timeout}s; last: {value!r}"[:4000])
        time.sleep(interval)
        value = fetch()
    return value

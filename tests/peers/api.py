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
]
# Response schemas (by OpenAPI component name) and the fields read from them.
RESPONSE_CONTRACT: dict[str, tuple[str, ...]] = {
    "AccountOut": ("id",),
    "UserOut": ("id", "extension"),
    "LocationOut": ("id",),
    "DeviceCreated": ("id", "state", "lines"),
    "LineCredentials": ("user_id", "sip_username", "sip_password", "sip_domain"),
    "CdrOut": ("account_id", "call_id", "disposition", "duration_s", "answer", "end", "sip_code"),
}
# Live views are free-form dicts; the keys read from them:
REGISTRATION_KEYS = ("aor", "account_id", "contact", "source")
CALL_KEYS = ("call_id", "account_id", "state")

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

"""What the composition root hands to `create_app`.

`ProvisioningContext` carries shared, long-lived collaborators (no globals):
the engine, the API token, the SIP domain, the one injected clock, the change
bus, the hardware catalog, the service plans, a `LiveView` onto the gateway's in-memory
state for `GET /registrations` and `GET /calls`, and `LabControl` for the lab routes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.engine import Engine

from hardware_profiles.catalog import HardwareCatalog, load_catalog
from provisioning.cdrs import CdrStore
from provisioning.events import ChangeBus
from provisioning.fileserver import FileServer
from provisioning.plans import PlanCatalog, load_plans
from provisioning.secrets import SecretBox


@runtime_checkable
class LiveView(Protocol):
    """Read-only view of the gateway's live state, implemented by the gateway.

    Called **on the event loop thread** (the live endpoints are `async def`
    so that the gateway, which owns this state on that loop, needs no locks).
    Must be quick and non-blocking; return JSON-serialisable dicts. When a
    dict has an `account_id` key the API can filter by it.
    """

    def registrations(self) -> list[dict[str, Any]]: ...

    def calls(self) -> list[dict[str, Any]]: ...


class NoLiveView:
    """LiveView for an API running without a gateway (tests, ops tools)."""

    def registrations(self) -> list[dict[str, Any]]:
        return []

    def calls(self) -> list[dict[str, Any]]:
        return []


class LabConflict(Exception):
    """A lab change that clashes with what exists (the API's 409): a conference room
    number taken or an organizer who already has a room (R30). Raised by `LabControl`
    implementations; `rule_id` names the rule when one is the reason."""

    def __init__(self, message: str, rule_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule_id = rule_id


@runtime_checkable
class LabControl(Protocol):
    """Control of the lab's simulated world inside the running gateway, implemented by it:
    the simulated PSTN's rule book and calls (#5 item 8), conference rooms and their live
    roster (R30), the flood guard's temporary bans (R27) and the PSAP's call log (#4).

    Same threading contract as `LiveView`: every method is called **on the event loop
    thread** (the lab routes are `async def`), must be quick and non-blocking, and
    returns JSON-serialisable values. Errors the API maps: `ValueError` → 422 (bad
    input; the message is shown), `LookupError` (e.g. `KeyError`) → 404, `LabConflict`
    → 409. `LabConflict` is checked first, so it may also subclass `ValueError`.
    """

    # simulated PSTN: number patterns ("*0486", "+44*", "+1415555XXXX") → behaviours
    def pstn_rules(self) -> list[dict[str, Any]]: ...

    def set_pstn_rule(self, pattern: str, behaviour: str | dict[str, Any], note: str) -> dict[str, Any]:
        """Add or replace the API rule for `pattern`; returns it. ValueError for a bad pattern/behaviour."""
        ...

    def delete_pstn_rule(self, pattern: str) -> bool:
        """Remove the API rule for `pattern`; False when there was none."""
        ...

    def clear_pstn_rules(self) -> None:
        """Remove every rule set through the API (the default table stays)."""
        ...

    def pstn_calls(self, number: str | None, limit: int) -> list[dict[str, Any]]:
        """Calls the simulated PSTN received, newest first, at most `limit`, optionally to `number`."""
        ...

    def pstn_hang_up(self, call_id: str) -> bool:
        """End a live PSTN call from the PSTN side (BYE, or a final answer while ringing)."""
        ...

    # conference bridge (R30)
    def conference_rooms(self, account_id: int | None) -> list[dict[str, Any]]: ...

    def create_conference_room(self, account_id: int, organizer: str, number: str | None, pin: str | None,
                               name: str | None) -> dict[str, Any]:
        """A new room (number and PIN generated when None); the answer includes the PIN.
        ValueError bad input, LookupError unknown account, LabConflict number taken/organizer has a room."""
        ...

    def conference_room(self, number: str) -> dict[str, Any] | None: ...

    def delete_conference_room(self, number: str) -> bool:
        """Remove the room, hanging up everyone in it; False when there was no such room."""
        ...

    def conference_roster(self, number: str) -> list[dict[str, Any]] | None:
        """Live connections in order of admission; None when there is no such room."""
        ...

    def conference_kick(self, number: str, participant_id: str) -> bool:
        """Hang up one connection; False when it is not in the room."""
        ...

    # flood guard (R27)
    def fraud_bans(self) -> list[dict[str, Any]]:
        """Temporary bans in force, each with at least `key`, `until` (ISO 8601) and `kind`."""
        ...

    def clear_fraud_ban(self, key: str) -> bool:
        """Lift a ban now; False when `key` was not banned."""
        ...

    # PSAP (#4)
    def psap_calls(self, role: str | None, verdict: str | None, device_id: str | None) -> list[dict[str, Any]]:
        ...


@dataclass(frozen=True)
class ProvisioningContext:
    engine: Engine
    api_token: str
    sip_domain: str
    now: Callable[[], datetime]
    bus: ChangeBus
    live: LiveView = field(default_factory=NoLiveView)
    catalog: HardwareCatalog = field(default_factory=load_catalog)
    plans: PlanCatalog = field(default_factory=load_plans)
    # Key that seals SIP passwords for phone configs. The default is a throwaway key:
    # pass `SecretBox.from_file(data_dir / "secret.key")` so configs survive restarts.
    secrets: SecretBox | None = field(default_factory=SecretBox.generate)
    cdrs: CdrStore | None = None  # defaults to CdrStore(engine)
    # What phone configs point at: the SIP server host (default: the SIP domain), the SIP
    # port per transport, and the public URL of /provision (default: from the request).
    sip_server: str | None = None
    sip_ports: Mapping[str, int] = field(default_factory=lambda: {"udp": 5060, "tcp": 5060, "tls": 5061})
    provision_base_url: str | None = None
    files: FileServer | None = None  # built from the fields above when None
    # The running gateway's lab controls (simulated PSTN, conference rooms, fraud bans, PSAP log);
    # None when the API runs without a gateway: the lab routes then answer 503.
    lab: LabControl | None = None

    def __post_init__(self) -> None:
        if self.files is None:  # the one instance: its digest key and refusal log live there
            object.__setattr__(self, "files", FileServer(sip_server=self.sip_server or self.sip_domain,
                                                         sip_ports=dict(self.sip_ports)))

    def cdr_store(self) -> CdrStore:
        return self.cdrs if self.cdrs is not None else CdrStore(self.engine)

    def file_server(self) -> FileServer:
        assert self.files is not None
        return self.files

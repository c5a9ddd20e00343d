"""What the composition root hands to `create_app`.

`ProvisioningContext` carries shared, long-lived collaborators (no globals):
the engine, the API token, the SIP domain, the one injected clock, the change
bus, the hardware catalog, the service plans, and a `LiveView` onto the gateway's in-memory
state for `GET /registrations` and `GET /calls`.
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

    def __post_init__(self) -> None:
        if self.files is None:  # the one instance: its digest key and refusal log live there
            object.__setattr__(self, "files", FileServer(sip_server=self.sip_server or self.sip_domain,
                                                         sip_ports=dict(self.sip_ports)))

    def cdr_store(self) -> CdrStore:
        return self.cdrs if self.cdrs is not None else CdrStore(self.engine)

    def file_server(self) -> FileServer:
        assert self.files is not None
        return self.files

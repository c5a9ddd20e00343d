"""What every service function needs, passed in (no globals).

`ServiceEnv` bundles the session, the injected clock, the change bus, the
acting principal, the SIP domain (realm for new credentials), the hardware
catalog and the service plans. `commit()` ends the unit of work: it commits,
turns unique-constraint races into `Conflict`, and only then publishes the
change events, so no subscriber ever sees a change that was rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from hardware_profiles.catalog import HardwareCatalog
from provisioning.errors import Conflict, NotFound
from provisioning.events import Change, ChangeBus
from provisioning.plans import PlanCatalog, load_plans
from provisioning.secrets import SecretBox

Clock = Callable[[], datetime]
T = TypeVar("T", bound=SQLModel)

# Constraint / column fragments in driver messages → what to tell the client.
_UNIQUE_MESSAGES = (
    ("uq_user_account_extension", "extension already used in this account"),
    ("user.account_id, user.extension", "extension already used in this account"),
    ("named_user_id", "named_user_id already exists"),
    ("licence_member.user_id", "user already holds a licence"),
    ("licence_member", "user already holds a licence"),
    ("mac", "a device with this MAC already exists"),
    ("sip_username", "sip_username collision, retry"),
)


@dataclass(frozen=True)
class ServiceEnv:
    session: Session
    now: Clock
    sip_domain: str
    catalog: HardwareCatalog
    bus: ChangeBus | None = None
    actor: str = "system"
    # Long-lived callers (the API) pass their loaded catalog; the default loads the shipped files.
    plans: PlanCatalog = field(default_factory=load_plans)
    # Seals SIP passwords for phone configs (provisioning.secrets); None: HA1 only.
    secrets: SecretBox | None = None

    def commit(self, *changes: Change) -> None:
        try:
            self.session.commit()
        except IntegrityError as exc:
            self.session.rollback()
            text = str(exc.orig).lower()
            message = next((m for key, m in _UNIQUE_MESSAGES if key in text),
                           "conflicts with an existing record")
            raise Conflict(message) from exc
        if self.bus is not None:
            for change in changes:
                self.bus.publish(change)


def get_or_404(session: Session, model: type[T], entity_id: int) -> T:
    row = session.get(model, entity_id)
    if row is None:
        raise NotFound(model.__name__.lower(), entity_id)
    return row

"""Emergency locations (civic address + callback number), stored as given.

Validation against address data (MSAG-like ranges, geocoders) comes with the
E911 issue; until then a location needs a country and a callback number.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from provisioning import audit
from provisioning.events import Change
from provisioning.models import Account, Location
from provisioning.schemas import LocationCreate
from provisioning.services.env import ServiceEnv, get_or_404


def create_location(env: ServiceEnv, account_id: int, data: LocationCreate) -> Location:
    s = env.session
    get_or_404(s, Account, account_id)
    location = Location(account_id=account_id, created_at=env.now(), **data.model_dump())
    s.add(location)
    s.flush()
    assert location.id is not None
    audit.record(s, at=env.now(), actor=env.actor, action="location.created", entity="location",
                 entity_id=location.id, account_id=account_id,
                 detail=data.model_dump(exclude_none=True))
    env.commit(Change("location.created", location.id, account_id))
    return location


def get_location(session: Session, location_id: int) -> Location:
    return get_or_404(session, Location, location_id)


def list_locations(session: Session, account_id: int, *, limit: int = 100,
                   offset: int = 0) -> list[Location]:
    get_or_404(session, Account, account_id)
    stmt = (select(Location).where(Location.account_id == account_id)
            .order_by(col(Location.id)).offset(offset).limit(limit))
    return list(session.exec(stmt))

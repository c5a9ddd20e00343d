from __future__ import annotations

from fastapi import APIRouter, status

from provisioning import services
from provisioning.api.deps import EnvDep, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.schemas import LocationCreate, LocationOut

router = APIRouter(tags=["locations"])


@router.post("/accounts/{account_id}/locations", status_code=status.HTTP_201_CREATED,
             response_model=LocationOut)
def create_location(account_id: int, body: LocationCreate, env: EnvDep) -> LocationOut:
    return LocationOut.model_validate(services.create_location(env, account_id, body))


@router.get("/accounts/{account_id}/locations", response_model=list[LocationOut])
def list_locations(account_id: int, session: SessionDep, limit: Limit = 100,
                   offset: Offset = 0) -> list[LocationOut]:
    rows = services.list_locations(session, account_id, limit=limit, offset=offset)
    return [LocationOut.model_validate(r) for r in rows]


@router.get("/locations/{location_id}", response_model=LocationOut)
def get_location(location_id: int, session: SessionDep) -> LocationOut:
    return LocationOut.model_validate(services.get_location(session, location_id))

"""Emergency locations (issue #4): validated on the way in, 422 naming every failing element.

A refused location answers FastAPI's validation shape, one `detail[]` entry
per failing element: `loc` (`["body", "hno"]`), `msg`, and machine-readable
`field`, `element` (the RFC 5139 name, `HNO`), `problem` (`required`,
`invalid_format`, `required_for_dispatch`, `invalid_number` …) and `rule`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from provisioning.api.deps import EnvDep, SessionDep
from provisioning.api.routes.common import Limit, Offset
from provisioning.e911_schemas import LocationCheckOut, LocationProblem, LocationUpdate
from provisioning.schemas import LocationCreate, LocationOut, SiteNeedsIn
from provisioning.services import locations

router = APIRouter(tags=["locations"])

_INVALID: dict[int | str, dict[str, Any]] = {422: {"description": (
    "Not a dispatchable location: `detail[]` has one entry per failing element with `loc`, "
    "`field`, `element` (RFC 5139 name), `problem` and `message`.")}}


def check_out(result: locations.LocationCheck) -> LocationCheckOut:
    problems = []
    for issue in result.issues():
        d = issue.to_dict()
        problems.append(LocationProblem(loc=["body", *issue.field], msg=issue.message, **d))
    return LocationCheckOut(valid=result.valid, problems=problems, civic=result.civic.elements(),
                            callback_number=result.callback_number, formatted=result.formatted,
                            site_needs=SiteNeedsIn(**locations.site_needs_dict(result.site_needs)))


@router.post("/accounts/{account_id}/locations", status_code=status.HTTP_201_CREATED,
             response_model=LocationOut, responses=_INVALID)
def create_location(account_id: int, body: LocationCreate, env: EnvDep) -> LocationOut:
    """Validate (country profile, dispatchable detail the site needs, callback → E.164 in the
    account's region) and store the normalised address."""
    return LocationOut.model_validate(locations.create_location(env, account_id, body))


@router.post("/accounts/{account_id}/locations:validate", response_model=LocationCheckOut)
def validate_new_location(account_id: int, body: LocationCreate, session: SessionDep) -> LocationCheckOut:
    """Dry run of a creation: what would be stored and every problem; nothing is stored."""
    return check_out(locations.validate_new(session, account_id, body))


@router.get("/accounts/{account_id}/locations", response_model=list[LocationOut])
def list_locations(account_id: int, session: SessionDep, limit: Limit = 100,
                   offset: Offset = 0) -> list[LocationOut]:
    rows = locations.list_locations(session, account_id, limit=limit, offset=offset)
    return [LocationOut.model_validate(r) for r in rows]


@router.get("/locations/{location_id}", response_model=LocationOut)
def get_location(location_id: int, session: SessionDep) -> LocationOut:
    return LocationOut.model_validate(locations.get_location(session, location_id))


@router.patch("/locations/{location_id}", response_model=LocationOut, responses=_INVALID)
def update_location(location_id: int, body: LocationUpdate, env: EnvDep) -> LocationOut:
    """Change fields (null clears a civic element); the whole location is validated again and
    stored only if still dispatchable. Devices stay bound: the gateway looks their location up
    afresh (`device.location_changed` events)."""
    return LocationOut.model_validate(
        locations.update_location(env, location_id, body.model_dump(exclude_unset=True, mode="json")))


@router.post("/locations/{location_id}/validate", response_model=LocationCheckOut)
def validate_location(location_id: int, session: SessionDep, body: LocationUpdate | None = None,
                      ) -> LocationCheckOut:
    """Dry run: the stored location (with the PATCH-shaped changes in the body, if any)
    validated against today's profiles; nothing is stored."""
    changes = body.model_dump(exclude_unset=True, mode="json") if body is not None else {}
    return check_out(locations.check_update(session, location_id, changes))

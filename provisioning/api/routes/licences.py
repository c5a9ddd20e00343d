"""Licences: named or concurrent (R4), reassignment ends the old holder's access (R2)."""

from __future__ import annotations

from fastapi import APIRouter, status

from provisioning.api.deps import EnvDep, SessionDep
from provisioning.models import Licence
from provisioning.schemas import LicenceCreate, LicenceOut, LicenceUsers
from provisioning.services import licences

router = APIRouter(tags=["licences"])


def _out(licence: Licence, user_ids: list[int], revoked: list[int] | None = None) -> LicenceOut:
    return LicenceOut.model_validate({**licence.model_dump(), "user_ids": user_ids,
                                      "revoked_line_ids": revoked or []})


@router.post("/accounts/{account_id}/licences", status_code=status.HTTP_201_CREATED,
             response_model=LicenceOut)
def create_licence(account_id: int, body: LicenceCreate, env: EnvDep) -> LicenceOut:
    return _out(*licences.create_licence(env, account_id, body))


@router.get("/accounts/{account_id}/licences", response_model=list[LicenceOut])
def list_licences(account_id: int, session: SessionDep) -> list[LicenceOut]:
    return [_out(lic, users) for lic, users in licences.list_licences(session, account_id)]


@router.get("/licences/{licence_id}", response_model=LicenceOut)
def get_licence(licence_id: int, session: SessionDep) -> LicenceOut:
    return _out(*licences.get_licence(session, licence_id))


@router.put("/licences/{licence_id}/users", response_model=LicenceOut)
def reassign_licence(licence_id: int, body: LicenceUsers, env: EnvDep) -> LicenceOut:
    """Replace the licence's users (R2): removed users' lines get new secret credentials
    at once (listed in `revoked_line_ids`) and the gateway drops their registrations."""
    return _out(*licences.reassign_licence(env, licence_id, body.user_ids))

"""`GET /provision/<file>`: the files real phones fetch (no bearer token: phones
cannot send one; a device may require HTTP digest instead). The recent refused
fetches are visible to ops under `/api/v1/provision/refused`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from provisioning.api.deps import Ctx, SessionDep
from provisioning.fileserver import FetchRequest, unknown_fetches_json
from provisioning.services import ServiceEnv

router = APIRouter(tags=["provisioning files"])
ops_router = APIRouter(tags=["provisioning files"])


@router.get("/provision/{file_name}", response_class=Response,
            responses={200: {"description": "The vendor file."},
                       401: {"description": "This device needs HTTP digest (user = its MAC)."},
                       403: {"description": "Suspended device, or a User-Agent of another model/MAC "
                                            "under the `enforce` policy."},
                       404: {"description": "Unknown MAC (logged, never created), retired device, or "
                                            "not a file of this model."}})
def provision_file(file_name: str, request: Request, ctx: Ctx, session: SessionDep) -> Response:
    env = ServiceEnv(session=session, now=ctx.now, sip_domain=ctx.sip_domain, catalog=ctx.catalog,
                     bus=ctx.bus, actor="provisioning", plans=ctx.plans, secrets=ctx.secrets)
    base = ctx.provision_base_url or str(request.base_url).rstrip("/") + "/provision"
    req = FetchRequest(file=file_name, user_agent=request.headers.get("user-agent", ""),
                       ip=request.client.host if request.client else "", uri=request.url.path,
                       authorization=request.headers.get("authorization"))
    result = ctx.file_server().serve(env, req, base)
    return Response(result.body, status_code=result.status, media_type=result.content_type,
                    headers=dict(result.headers))


@ops_router.get("/provision/refused")
def refused_fetches(ctx: Ctx) -> list[dict[str, Any]]:
    """The most recent refused configuration fetches (unknown MACs first of all)."""
    return unknown_fetches_json(ctx.file_server())
